//! `ae compress` / `ae decompress`: learned image compression to files.

use std::path::{Path, PathBuf};

use ae_codec::{Codec, Decoded, Image};
use ae_data::ColorMode;
use ae_train::{TrainConfig, files, plot};
use anyhow::{Context, Result, bail};

/// Loads a codec and checks the run was trained on data in [0, 1].
fn load(run: &Path) -> Result<Codec> {
    let codec =
        Codec::load(run).with_context(|| format!("loading the codec in {}", run.display()))?;
    if crate::usemodel::normalizer(run)? != ae_data::Normalizer::identity() {
        bail!(
            "{}: the codec was trained on normalised data; codecs take images in [0, 1] (set data.normalize = \"none\")",
            run.display()
        );
    }
    Ok(codec)
}

fn color(codec: &Codec) -> ColorMode {
    if codec.model().config().input_dims()[0] == 3 {
        ColorMode::Rgb
    } else {
        ColorMode::Gray
    }
}

/// Reads one image at its own size.
fn read_image(path: &Path, mode: ColorMode) -> Result<Image> {
    let d = ae_data::load_image_files(&[path.to_path_buf()], mode, None)?;
    let dims = d.sample_dims();
    Image::new(dims[0], dims[1], dims[2], d.data().to_vec())
        .with_context(|| format!("{}", path.display()))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned())
}

/// The images to compress, with names: files, or the run's test split.
fn inputs(
    run: &Path,
    codec: &Codec,
    images: &[PathBuf],
    data_dir: Option<PathBuf>,
    limit: Option<usize>,
) -> Result<Vec<(String, Image)>> {
    if !images.is_empty() {
        let mode = color(codec);
        return images
            .iter()
            .map(|p| Ok((stem(p), read_image(p, mode)?)))
            .collect();
    }
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG)).with_context(|| {
        format!(
            "{} is not a training run: name the images to compress",
            run.display()
        )
    })?;
    let test = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?
        .test
        .input;
    let dims = test.sample_dims().to_vec();
    let per: usize = dims.iter().product();
    let n = limit.unwrap_or(usize::MAX).min(test.len());
    test.data()
        .chunks(per)
        .take(n)
        .enumerate()
        .map(|(i, v)| {
            Ok((
                format!("test-{i:05}"),
                Image::new(dims[0], dims[1], dims[2], v.to_vec())?,
            ))
        })
        .collect()
}

/// The image as a PNG stores it (8 bits per value): quality is measured on
/// what a user gets, as for the classical codecs.
fn to_8bit(im: &Image) -> Image {
    Image {
        data: im
            .data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0)
            .collect(),
        ..im.clone()
    }
}

/// Totals printed by both commands.
#[derive(Default)]
struct Totals {
    images: usize,
    bytes: usize,
    pixels: usize,
    psnr_sum: f64,
    compared: usize,
}

impl Totals {
    fn add(&mut self, bytes: usize, pixels: usize, psnr: Option<f64>) {
        self.images += 1;
        self.bytes += bytes;
        self.pixels += pixels;
        if let Some(p) = psnr {
            self.psnr_sum += p;
            self.compared += 1;
        }
    }

    fn json(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "images": self.images,
            "bytes": self.bytes,
            "bytes_per_image": self.bytes as f64 / self.images.max(1) as f64,
            "bpp": 8.0 * self.bytes as f64 / self.pixels.max(1) as f64,
            "psnr": (self.compared > 0).then(|| self.psnr_sum / self.compared as f64),
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    fn print(&self) {
        print!(
            "{} images, {} bytes ({:.1} per image, {:.3} bits per pixel)",
            self.images,
            self.bytes,
            self.bytes as f64 / self.images.max(1) as f64,
            8.0 * self.bytes as f64 / self.pixels.max(1) as f64
        );
        if self.compared > 0 {
            print!(", mean PSNR {:.2} dB", self.psnr_sum / self.compared as f64);
        }
        println!();
    }
}

/// `ae compress`.
#[allow(clippy::too_many_arguments)]
pub fn compress(
    run: &Path,
    images: &[PathBuf],
    data_dir: Option<PathBuf>,
    limit: Option<usize>,
    output: &Path,
    archive: bool,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let codec = load(run)?;
    let items = inputs(run, &codec, images, data_dir, limit)?;
    if items.is_empty() {
        bail!("no images to compress");
    }
    let mut totals = Totals::default();
    if archive {
        let imgs: Vec<Image> = items.iter().map(|(_, im)| im.clone()).collect();
        let bytes = codec.compress_archive(&imgs)?;
        // Measure quality on what a reader gets back from the bytes.
        let back = codec.decompress_archive(&bytes)?;
        ae_core::checkpoint::write_atomic(output, &bytes)?;
        let pixels: usize = imgs.iter().map(|i| i.height * i.width).sum();
        let share = bytes.len() as f64 / imgs.len() as f64;
        for (im, d) in imgs.iter().zip(&back) {
            totals.psnr_sum += ae_codec::psnr(im, &to_8bit(&d.image));
            totals.compared += 1;
        }
        totals.images = imgs.len();
        totals.bytes = bytes.len();
        totals.pixels = pixels;
        if json {
            println!(
                "{}",
                totals.json(serde_json::json!({"archive": output, "mode": "archive"}))
            );
        } else {
            println!(
                "{}: {} images in one archive, {share:.1} bytes per image",
                output.display(),
                imgs.len()
            );
            totals.print();
        }
        return Ok(());
    }
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    for (name, im) in &items {
        let bytes = codec
            .compress(im)
            .with_context(|| format!("compressing {name}"))?;
        let back = codec.decompress(&bytes)?;
        let psnr = ae_codec::psnr(im, &to_8bit(&back.image));
        let path = output.join(format!("{name}.aec"));
        ae_core::checkpoint::write_atomic(&path, &bytes)?;
        let pixels = im.height * im.width;
        if !json && !quiet {
            println!(
                "{}: {} bytes, {:.3} bpp, PSNR {psnr:.2} dB",
                path.display(),
                bytes.len(),
                8.0 * bytes.len() as f64 / pixels as f64
            );
        }
        totals.add(bytes.len(), pixels, Some(psnr));
    }
    if json {
        println!(
            "{}",
            totals.json(serde_json::json!({"dir": output, "mode": "files"}))
        );
    } else {
        totals.print();
    }
    Ok(())
}

/// `ae decompress`.
pub fn decompress(
    run: &Path,
    inputs: &[PathBuf],
    output: &Path,
    original: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let codec = load(run)?;
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let mode = color(&codec);
    let mut totals = Totals::default();
    for file in inputs {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let name = stem(file);
        let decoded: Vec<(String, Decoded)> = if bytes.starts_with(ae_codec::format::MAGIC_ARCHIVE)
        {
            codec
                .decompress_archive(&bytes)
                .with_context(|| format!("{}", file.display()))?
                .into_iter()
                .enumerate()
                .map(|(i, d)| (format!("{name}-{i:05}"), d))
                .collect()
        } else {
            vec![(
                name.clone(),
                codec
                    .decompress(&bytes)
                    .with_context(|| format!("{}", file.display()))?,
            )]
        };
        let share = bytes.len() as f64 / decoded.len().max(1) as f64;
        for (n, d) in decoded {
            let im = &d.image;
            let path = output.join(format!("{n}.png"));
            plot::save_image(&path, &im.data, &[im.channels, im.height, im.width])?;
            let psnr = match &original {
                Some(dir) => {
                    let orig = dir.join(format!("{n}.png"));
                    if orig.exists() {
                        let o = read_image(&orig, mode)?;
                        if (o.height, o.width) != (im.height, im.width) {
                            bail!(
                                "{} is {}x{}, the decoded image {}x{}",
                                orig.display(),
                                o.height,
                                o.width,
                                im.height,
                                im.width
                            );
                        }
                        Some(ae_codec::psnr(&o, &to_8bit(im)))
                    } else {
                        None
                    }
                }
                None => None,
            };
            let pixels = im.height * im.width;
            if !json {
                print!(
                    "{}: {share:.1} bytes, {:.3} bpp",
                    path.display(),
                    8.0 * share / pixels as f64
                );
                match psnr {
                    Some(p) => println!(", PSNR {p:.2} dB"),
                    None => println!(),
                }
            }
            totals.images += 1;
            totals.pixels += pixels;
            if let Some(p) = psnr {
                totals.psnr_sum += p;
                totals.compared += 1;
            }
        }
        totals.bytes += bytes.len();
    }
    if json {
        println!("{}", totals.json(serde_json::json!({"dir": output})));
    } else {
        totals.print();
    }
    Ok(())
}
