//! `cargo xtask bench compress`: ae's learned codec against PNG, JPEG, WebP
//! and gzip on the MNIST test set, all measured in one run.
//!
//! ae: one codec per rate weight λ (`configs/mnist-codec.toml`, trained on
//! the MNIST training split with `ae train --lambda`), each compressing the
//! test split into one archive (`ae compress --archive`: bytes per image
//! include the archive's header share) and into single `.aec` files. PSNR is
//! measured on what `ae` decodes from the bytes, rounded to 8 bits.
//! Classical codecs: whole files per image, PSNR of the decoded 8-bit image,
//! mean over images. Bytes at 25, 28 and 32 dB are interpolated linearly
//! along each curve.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

use crate::bench::json_of;
use crate::{build_ae, project_root};

const LEVELS: [f64; 3] = [25.0, 28.0, 32.0];
const JPEG_QUALITIES: [u8; 12] = [5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95];
const WEBP_QUALITIES: [f32; 13] = [
    0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0,
];

/// One point of a rate–distortion curve.
#[derive(Clone, Copy, Debug)]
struct Point {
    bytes: f64,
    psnr: f64,
    setting: f64,
}

/// Reads the MNIST test images (IDX, optionally gzipped) as 28×28 bytes.
fn read_test_images(dir: &Path, limit: usize) -> Result<Vec<Vec<u8>>> {
    let raw = dir.join("t10k-images-idx3-ubyte");
    let gz = dir.join("t10k-images-idx3-ubyte.gz");
    let bytes = if raw.exists() {
        std::fs::read(&raw).with_context(|| format!("reading {}", raw.display()))?
    } else {
        let f = std::fs::File::open(&gz).with_context(|| format!("reading {}", gz.display()))?;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(f)
            .read_to_end(&mut v)
            .with_context(|| format!("decompressing {}", gz.display()))?;
        v
    };
    if bytes.len() < 16 || bytes[..4] != [0, 0, 8, 3] {
        bail!("{}: not an IDX image file", dir.display());
    }
    let dim = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let (n, h, w) = (dim(1), dim(2), dim(3));
    if (h, w) != (28, 28) || bytes.len() != 16 + n * h * w {
        bail!("{}: expected 28x28 images", dir.display());
    }
    Ok(bytes[16..]
        .chunks(h * w)
        .take(limit)
        .map(<[u8]>::to_vec)
        .collect())
}

fn psnr8(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2) / (255.0 * 255.0))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

fn png_bytes(img: &[u8]) -> Result<usize> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(img, 28, 28, image::ExtendedColorType::L8)?;
    Ok(out.len())
}

fn jpeg_point(imgs: &[Vec<u8>], q: u8) -> Result<Point> {
    let (mut bytes, mut psnr) = (0usize, 0.0);
    for img in imgs {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q).encode(
            img,
            28,
            28,
            image::ExtendedColorType::L8,
        )?;
        let back = image::load_from_memory_with_format(&out, image::ImageFormat::Jpeg)?.to_luma8();
        bytes += out.len();
        psnr += psnr8(img, back.as_raw());
    }
    let n = imgs.len() as f64;
    Ok(Point {
        bytes: bytes as f64 / n,
        psnr: psnr / n,
        setting: f64::from(q),
    })
}

fn webp_point(imgs: &[Vec<u8>], q: f32) -> Result<Point> {
    let (mut bytes, mut psnr) = (0usize, 0.0);
    for img in imgs {
        let rgb: Vec<u8> = img.iter().flat_map(|&v| [v, v, v]).collect();
        let enc = webp::Encoder::from_rgb(&rgb, 28, 28).encode(q);
        let back = webp::Decoder::new(&enc)
            .decode()
            .context("WebP could not decode its own output")?;
        // Luma of the decoded RGB (BT.601, as WebP's own conversion).
        let gray: Vec<u8> = back
            .chunks(if back.is_alpha() { 4 } else { 3 })
            .map(|p| {
                (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
                    .round() as u8
            })
            .collect();
        bytes += enc.len();
        psnr += psnr8(img, &gray);
    }
    let n = imgs.len() as f64;
    Ok(Point {
        bytes: bytes as f64 / n,
        psnr: psnr / n,
        setting: f64::from(q),
    })
}

fn gzip_bytes(imgs: &[Vec<u8>]) -> Result<f64> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for img in imgs {
        enc.write_all(img)?;
    }
    Ok(enc.finish()?.len() as f64 / imgs.len() as f64)
}

/// Bytes at `level` dB, linear along the curve; `None` outside it.
fn bytes_at(curve: &[Point], level: f64) -> Option<f64> {
    let mut pts = curve.to_vec();
    pts.sort_by(|a, b| a.psnr.total_cmp(&b.psnr));
    pts.windows(2).find_map(|w| {
        let (a, b) = (w[0], w[1]);
        (a.psnr <= level && level <= b.psnr && b.psnr > a.psnr)
            .then(|| a.bytes + (b.bytes - a.bytes) * (level - a.psnr) / (b.psnr - a.psnr))
    })
}

fn finished(run: &Path) -> bool {
    std::fs::read_to_string(run.join("state.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .is_some_and(|v| v["finished"].as_bool() == Some(true))
        && run.join("model.safetensors").exists()
}

#[derive(Debug)]
pub struct Options {
    pub json: bool,
    pub data_dir: PathBuf,
    pub epochs: Option<usize>,
    pub lambdas: Vec<f64>,
    pub limit: usize,
    pub reuse: bool,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

pub fn bench(o: Options) -> Result<()> {
    let ae = build_ae()?;
    let root = project_root();
    let base = root.join("runs").join("bench-compress");
    std::fs::create_dir_all(&base)?;
    let started = std::time::Instant::now();

    // ae: one codec per λ.
    let (mut archive, mut files) = (Vec::new(), Vec::new());
    let mut est_bpp = Vec::new();
    for &l in &o.lambdas {
        let run = base.join(format!("lambda-{l}"));
        if !(o.reuse && finished(&run)) {
            if run.exists() {
                std::fs::remove_dir_all(&run)?;
            }
            eprintln!(
                "compress: training the codec with λ = {l} into {}",
                run.display()
            );
            let mut t = Command::new(&ae);
            t.current_dir(&root)
                .args([
                    "train",
                    "--quiet",
                    "--json",
                    "--config",
                    "configs/mnist-codec.toml",
                ])
                .arg("--data-dir")
                .arg(&o.data_dir)
                .args(["--lambda", &l.to_string()])
                .arg("--out")
                .arg(&run);
            if let Some(e) = o.epochs {
                t.args(["--epochs", &e.to_string()]);
            }
            json_of(&mut t)?;
        } else {
            eprintln!("compress: reusing {}", run.display());
        }
        let test: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("test.json"))?)?;
        est_bpp.push(test["bpp"].as_f64().unwrap_or(f64::NAN));
        let limit = o.limit.to_string();
        let a = json_of(
            Command::new(&ae)
                .current_dir(&root)
                .args([
                    "compress",
                    "--json",
                    "--archive",
                    "--limit",
                    &limit,
                    "--model",
                ])
                .arg(&run)
                .arg("--data-dir")
                .arg(&o.data_dir)
                .arg("-o")
                .arg(run.join("test.aea")),
        )?;
        let single_limit = o.limit.min(1000).to_string();
        let f = json_of(
            Command::new(&ae)
                .current_dir(&root)
                .args([
                    "--quiet",
                    "compress",
                    "--json",
                    "--limit",
                    &single_limit,
                    "--model",
                ])
                .arg(&run)
                .arg("--data-dir")
                .arg(&o.data_dir)
                .arg("-o")
                .arg(run.join("files")),
        )?;
        let point = |v: &serde_json::Value| Point {
            bytes: v["bytes_per_image"].as_f64().unwrap_or(f64::NAN),
            psnr: v["psnr"].as_f64().unwrap_or(f64::NAN),
            setting: l,
        };
        archive.push(point(&a));
        files.push(point(&f));
    }

    // Classical codecs on the same images.
    let imgs = read_test_images(&o.data_dir, o.limit)?;
    let png = imgs.iter().map(|i| png_bytes(i)).sum::<Result<usize>>()? as f64 / imgs.len() as f64;
    let gzip = gzip_bytes(&imgs)?;
    let jpeg = JPEG_QUALITIES
        .iter()
        .map(|&q| jpeg_point(&imgs, q))
        .collect::<Result<Vec<_>>>()?;
    let webp = WEBP_QUALITIES
        .iter()
        .map(|&q| webp_point(&imgs, q))
        .collect::<Result<Vec<_>>>()?;
    let secs = started.elapsed().as_secs_f64();

    let at = |c: &[Point]| LEVELS.map(|l| bytes_at(c, l));
    let (ae_at, files_at, jpeg_at, webp_at) = (at(&archive), at(&files), at(&jpeg), at(&webp));
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let plot = base.join("rd.png");
    draw(&plot, &archive, &files, &jpeg, &webp, png, gzip)?;
    let docs_plot = root.join("docs").join("compress-rd.png");
    std::fs::copy(&plot, &docs_plot).ok();

    if o.json {
        let curve = |c: &[Point]| {
            c.iter()
                .map(
                    |p| serde_json::json!({"setting": p.setting, "bytes": p.bytes, "psnr": p.psnr}),
                )
                .collect::<Vec<_>>()
        };
        let levels = |v: [Option<f64>; 3]| {
            LEVELS
                .iter()
                .zip(v)
                .map(|(l, b)| serde_json::json!({"psnr": l, "bytes": b}))
                .collect::<Vec<_>>()
        };
        println!(
            "{}",
            serde_json::json!({
                "images": imgs.len(),
                "ae_archive": curve(&archive),
                "ae_files": curve(&files),
                "ae_estimated_bpp": est_bpp,
                "jpeg": curve(&jpeg),
                "webp": curve(&webp),
                "png_bytes": png,
                "gzip_bytes": gzip,
                "at_levels": {
                    "ae_archive": levels(ae_at),
                    "ae_files": levels(files_at),
                    "jpeg": levels(jpeg_at),
                    "webp": levels(webp_at),
                },
                "ratio_to_webp": LEVELS.iter().enumerate().map(|(i, _)| ratio(ae_at[i], webp_at[i])).collect::<Vec<_>>(),
                "ratio_to_jpeg": LEVELS.iter().enumerate().map(|(i, _)| ratio(ae_at[i], jpeg_at[i])).collect::<Vec<_>>(),
                "plot": plot,
                "seconds": secs,
            })
        );
        return Ok(());
    }
    println!(
        "MNIST test set, {} images (single .aec files: first {})",
        imgs.len(),
        o.limit.min(1000)
    );
    println!("\nae codec (configs/mnist-codec.toml), one run per λ:");
    println!("| λ | archive B/image | PSNR dB | single file B | PSNR dB | estimated bits/px |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for ((a, f), e) in archive.iter().zip(&files).zip(&est_bpp) {
        println!(
            "| {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.3} |",
            a.setting, a.bytes, a.psnr, f.bytes, f.psnr, e
        );
    }
    println!("\nclassical codecs (whole files per image):");
    println!("| codec | quality | B/image | PSNR dB |");
    println!("| --- | ---: | ---: | ---: |");
    for p in &jpeg {
        println!("| JPEG | {} | {:.1} | {:.2} |", p.setting, p.bytes, p.psnr);
    }
    for p in &webp {
        println!("| WebP | {} | {:.1} | {:.2} |", p.setting, p.bytes, p.psnr);
    }
    println!("| PNG (lossless) | best | {png:.1} | ∞ |");
    println!("| gzip of the raw set (lossless) | 9 | {gzip:.1} | ∞ |");
    println!("\nbytes per image at equal quality (interpolated along each curve):");
    println!(
        "| PSNR | ae archive | ae file | WebP | JPEG | ae / WebP (target ≤ 0.5) | ae / JPEG (target ≤ 0.25) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for i in 0..LEVELS.len() {
        println!(
            "| {} dB | {} | {} | {} | {} | {} | {} |",
            LEVELS[i],
            fmt_opt(ae_at[i]),
            fmt_opt(files_at[i]),
            fmt_opt(webp_at[i]),
            fmt_opt(jpeg_at[i]),
            ratio(ae_at[i], webp_at[i]).map_or("—".into(), |r| format!("{r:.2}")),
            ratio(ae_at[i], jpeg_at[i]).map_or("—".into(), |r| format!("{r:.2}")),
        );
    }
    println!(
        "\nplot: {} (copied to {})",
        plot.display(),
        docs_plot.display()
    );
    println!("time: {secs:.0} s");
    Ok(())
}

static FONT: &[u8] = include_bytes!("../../crates/ae-train/assets/DejaVuSansMono.ttf");

/// The rate–distortion curves as a PNG: bytes per image against PSNR, with
/// the lossless codecs as vertical lines.
fn draw(
    path: &Path,
    archive: &[Point],
    files: &[Point],
    jpeg: &[Point],
    webp: &[Point],
    png: f64,
    gzip: f64,
) -> Result<()> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let (w, h) = (900u32, 560u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let all: Vec<&Point> = archive
            .iter()
            .chain(files)
            .chain(jpeg)
            .chain(webp)
            .filter(|p| p.psnr.is_finite() && p.bytes.is_finite())
            .collect();
        // The range where the lossy codecs compete; high-quality JPEG and
        // WebP settings run off the chart.
        let x_max = (all.iter().map(|p| p.bytes).fold(png.max(gzip), f64::max) * 1.05).min(600.0);
        let y_min = all
            .iter()
            .map(|p| p.psnr)
            .fold(f64::INFINITY, f64::min)
            .floor();
        let y_max = all
            .iter()
            .map(|p| p.psnr)
            .fold(0.0, f64::max)
            .ceil()
            .min(42.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "MNIST test set: bytes per image vs PSNR",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, y_min..y_max)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("bytes per image")
            .y_desc("PSNR (dB)")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let series: [(&str, &[Point], RGBColor); 4] = [
            ("ae (archive)", archive, RGBColor(214, 39, 40)),
            ("ae (single .aec files)", files, RGBColor(255, 127, 14)),
            ("WebP", webp, RGBColor(31, 119, 180)),
            ("JPEG", jpeg, RGBColor(44, 160, 44)),
        ];
        for (name, pts, color) in series {
            let mut p: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.bytes, p.psnr))
                .filter(|&(x, y)| x <= x_max && y <= y_max)
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart
                .draw_series(
                    p.iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        for (name, x, color) in [
            ("PNG (lossless)", png, RGBColor(148, 103, 189)),
            ("gzip of raw set (lossless)", gzip, RGBColor(127, 127, 127)),
        ] {
            chart
                .draw_series(LineSeries::new(vec![(x, y_min), (x, y_max)], color))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).context("plot buffer")?;
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_the_curve_and_stays_inside_it() {
        let c = [
            Point {
                bytes: 100.0,
                psnr: 24.0,
                setting: 0.0,
            },
            Point {
                bytes: 200.0,
                psnr: 30.0,
                setting: 0.0,
            },
        ];
        assert!((bytes_at(&c, 27.0).unwrap() - 150.0).abs() < 1e-9);
        assert!(bytes_at(&c, 32.0).is_none());
    }

    #[test]
    fn classical_codecs_round_trip_an_image() {
        let img: Vec<u8> = (0..784)
            .map(|i| if (i / 28) % 7 < 3 { 255 } else { 0 })
            .collect();
        assert!(png_bytes(&img).unwrap() > 0);
        let j = jpeg_point(std::slice::from_ref(&img), 90).unwrap();
        assert!(j.psnr > 20.0 && j.bytes > 100.0, "{j:?}");
        let w = webp_point(std::slice::from_ref(&img), 90.0).unwrap();
        assert!(w.psnr > 20.0 && w.bytes > 20.0, "{w:?}");
    }
}
