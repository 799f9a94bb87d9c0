//! Using a trained model: encode, decode, reconstruct / denoise, sample,
//! interpolate.

use std::path::{Path, PathBuf};

use ae_core::{Autoencoder, Decoder, Encoder, Mode, Model};
use ae_data::{ColorMode, Dataset, Normalizer};
use ae_train::{TrainConfig, files, plot};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};

/// The run's `normalizer.json` (the identity when it has none).
pub fn normalizer(dir: &Path) -> Result<Normalizer> {
    let p = dir.join(files::NORMALIZER);
    if !p.exists() {
        return Ok(Normalizer::identity());
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid normaliser", p.display()))
}

/// `(channels, height, width)` of an image model, or an error naming it.
fn image_dims(model: &Model, run: &Path) -> Result<(usize, usize, usize)> {
    match model.config().input_dims().as_slice() {
        [c @ (1 | 3), h, w] => Ok((*c, *h, *w)),
        d => bail!(
            "the model in {} takes samples of {d:?}, not 1- or 3-channel images",
            run.display()
        ),
    }
}

/// Loads image files at the model's size, normalised as in training.
fn load_images(run: &Path, model: &Model, images: &[PathBuf]) -> Result<Dataset> {
    let (c, h, w) = image_dims(model, run)?;
    let color = if c == 1 {
        ColorMode::Gray
    } else {
        ColorMode::Rgb
    };
    let mut d = ae_data::load_image_files(images, color, Some((w as u32, h as u32)))?;
    normalizer(run)?.apply_to(&mut d)?;
    Ok(d)
}

/// Undoes the run's normalisation on flat samples.
fn denormalize(run: &Path, values: &mut [f32], per: usize) -> Result<()> {
    normalizer(run)?.invert(values, per)?;
    Ok(())
}

fn rows_of(v: &[f32], per: usize) -> Vec<&[f32]> {
    v.chunks(per).collect()
}

/// The data to encode: images, a CSV, or the run's test split.
fn data_for(
    run: &Path,
    model: &Model,
    data_dir: Option<PathBuf>,
    images: Option<PathBuf>,
    csv: Option<PathBuf>,
) -> Result<Dataset> {
    if let Some(dir) = images {
        let (c, h, w) = image_dims(model, run)?;
        let color = if c == 1 {
            ColorMode::Gray
        } else {
            ColorMode::Rgb
        };
        let mut d = ae_data::load_image_folder(&dir, color, Some((w as u32, h as u32)))?;
        normalizer(run)?.apply_to(&mut d)?;
        return Ok(d);
    }
    if let Some(csv) = csv {
        let mut d = ae_data::load_csv_vectors(&csv, None)?;
        normalizer(run)?.apply_to(&mut d)?;
        return Ok(d);
    }
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG)).with_context(|| {
        format!(
            "{} is not a training run: pass --images or --csv",
            run.display()
        )
    })?;
    Ok(
        ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?
            .test
            .input,
    )
}

/// `ae encode`: latent codes (the mean for VAEs) as CSV.
pub fn encode(
    run: &Path,
    data_dir: Option<PathBuf>,
    images: Option<PathBuf>,
    csv: Option<PathBuf>,
    out: &Path,
) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let data = data_for(run, &model, data_dir, images, csv)?;
    ae_anomaly::check_fits(&model, &data)?;
    let dim: usize = model.latent_dims().iter().product();
    let mut text = String::from("index,key,label");
    for j in 0..dim {
        text.push_str(&format!(",z{j}"));
    }
    text.push('\n');
    for idx in data.batch_indices(500, None, false)? {
        let x = data.tensor(&idx, model.device())?;
        let z = model
            .encode(&x, Mode::Eval)?
            .mean()
            .flatten_from(1)?
            .to_vec2::<f32>()?;
        for (&i, row) in idx.iter().zip(z) {
            let key = data
                .keys()
                .map(|k| k[i].replace(',', ";"))
                .unwrap_or_default();
            let label = data.labels().map(|l| l[i].to_string()).unwrap_or_default();
            text.push_str(&format!("{i},{key},{label}"));
            for v in row {
                text.push_str(&format!(",{v}"));
            }
            text.push('\n');
        }
    }
    ae_core::checkpoint::write_atomic(out, text.as_bytes())?;
    println!(
        "{} latent codes of {dim} values written to {}",
        data.len(),
        out.display()
    );
    Ok(())
}

/// Reads the `z*` columns of a latents CSV.
fn read_latents(path: &Path, dim: usize) -> Result<Vec<f32>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("empty latents file")?
        .split(',')
        .collect();
    let cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with('z'))
        .map(|(i, _)| i)
        .collect();
    if cols.len() != dim {
        bail!(
            "{}: {} latent columns (z0, z1, …), the model's latent has {dim} values",
            path.display(),
            cols.len()
        );
    }
    let mut v = Vec::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        for &c in &cols {
            let f = fields
                .get(c)
                .with_context(|| format!("{}: line {} is short", path.display(), n + 2))?;
            let x: f32 = f.trim().parse().with_context(|| {
                format!("{}: line {}: `{f}` is not a number", path.display(), n + 2)
            })?;
            if !x.is_finite() {
                bail!("{}: line {}: {x} is not finite", path.display(), n + 2);
            }
            v.push(x);
        }
    }
    if v.is_empty() {
        bail!("{}: no latent codes", path.display());
    }
    Ok(v)
}

/// Writes images as one grid PNG (`out` ends in `.png`) or one PNG each in
/// the directory `out`.
fn write_images(
    out: &Path,
    samples: &[f32],
    dims: &[usize],
    names: &[String],
    cols: usize,
) -> Result<()> {
    let per: usize = dims.iter().product();
    let rows = rows_of(samples, per);
    if out.extension().is_some_and(|e| e == "png") {
        let grid: Vec<Vec<&[f32]>> = rows.chunks(cols.max(1)).map(<[&[f32]]>::to_vec).collect();
        plot::image_grid(out, &grid, dims, 3)?;
    } else {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for (s, name) in rows.iter().zip(names) {
            plot::save_image(&out.join(name), s, dims)?;
        }
    }
    Ok(())
}

/// `ae decode`: images from latent codes.
pub fn decode(run: &Path, latents: &Path, out: &Path) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let dims = {
        let (c, h, w) = image_dims(&model, run)?;
        vec![c, h, w]
    };
    let ld = model.latent_dims().to_vec();
    let z = read_latents(latents, ld.iter().product())?;
    let n = z.len() / ld.iter().product::<usize>();
    let mut shape = vec![n];
    shape.extend(&ld);
    let mut x = model
        .decode(&Tensor::from_vec(z, shape, model.device())?, false)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per: usize = dims.iter().product();
    denormalize(run, &mut x, per)?;
    let names: Vec<String> = (0..n).map(|i| format!("decoded-{i:05}.png")).collect();
    write_images(out, &x, &dims, &names, 8)?;
    println!("{n} images decoded to {}", out.display());
    Ok(())
}

/// `ae reconstruct` / `ae denoise`: images through the model.
pub fn reconstruct(run: &Path, images: &[PathBuf], out: &Path, grid: bool) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let data = load_images(run, &model, images)?;
    let idx: Vec<usize> = (0..data.len()).collect();
    let x = data.tensor(&idx, model.device())?;
    let mut r = model
        .infer(&x)?
        .reconstruction
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per = data.per_sample();
    denormalize(run, &mut r, per)?;
    let dims = data.sample_dims().to_vec();
    if grid {
        let mut inputs = data.data().to_vec();
        denormalize(run, &mut inputs, per)?;
        let rows = vec![rows_of(&inputs, per), rows_of(&r, per)];
        plot::image_grid(out, &rows, &dims, 3)?;
    } else {
        let names: Vec<String> = images
            .iter()
            .map(|p| {
                p.file_stem()
                    .map_or("image".into(), |s| s.to_string_lossy().into_owned())
                    + ".png"
            })
            .collect();
        write_images(out, &r, &dims, &names, 8)?;
    }
    println!("{} images written to {}", data.len(), out.display());
    Ok(())
}

/// `ae sample`: images decoded from the prior of a VAE.
pub fn sample(run: &Path, n: usize, out: &Path, seed: u64) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    if !model.is_variational() {
        bail!(
            "{} holds a deterministic autoencoder: sampling needs a VAE (`variational = true`)",
            run.display()
        );
    }
    let (c, h, w) = image_dims(&model, run)?;
    let mut shape = vec![n.max(1)];
    shape.extend(model.latent_dims());
    let mut rng = ae_core::rng(seed);
    let z = ae_core::randn(&mut rng, &shape, model.device())?;
    let mut x = model
        .generate(&z, &mut rng)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    denormalize(run, &mut x, c * h * w)?;
    let cols = (n as f64).sqrt().ceil() as usize;
    let names: Vec<String> = (0..n).map(|i| format!("sample-{i:05}.png")).collect();
    write_images(out, &x, &[c, h, w], &names, cols)?;
    println!("{n} samples written to {}", out.display());
    Ok(())
}

/// `ae interpolate`: a strip of images decoded along the line between the
/// codes of two images.
pub fn interpolate(run: &Path, a: &Path, b: &Path, steps: usize, out: &Path) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let data = load_images(run, &model, &[a.to_path_buf(), b.to_path_buf()])?;
    let x = data.tensor(&[0, 1], model.device())?;
    let z = model.encode(&x, Mode::Eval)?.mean().clone();
    let (za, zb) = (z.get(0)?, z.get(1)?);
    let steps = steps.max(2);
    let zs: Vec<Tensor> = (0..steps)
        .map(|i| {
            let t = i as f64 / (steps - 1) as f64;
            (za.affine(1.0 - t, 0.0)? + zb.affine(t, 0.0)?)?.unsqueeze(0)
        })
        .collect::<candle_core::Result<_>>()?;
    let mut imgs = model
        .decode(&Tensor::cat(&zs, 0)?, false)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per = data.per_sample();
    denormalize(run, &mut imgs, per)?;
    plot::image_grid(out, &[rows_of(&imgs, per)], data.sample_dims(), 3)?;
    println!(
        "{steps} images from {} to {} written to {}",
        a.display(),
        b.display(),
        out.display()
    );
    Ok(())
}

/// `ae reduce`: a 2-D picture of the latent codes of the run's test split
/// (their first two principal components when the latent is larger), and
/// the test reconstruction error against PCA with as many components.
pub fn reduce(run: &Path, data_dir: Option<PathBuf>, plot_path: &Path, json: bool) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG))
        .with_context(|| format!("{} is not a training run", run.display()))?;
    let prepared = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?;
    let test = &prepared.test.input;
    let dim: usize = model.latent_dims().iter().product();
    let mut codes = Vec::with_capacity(test.len() * dim);
    let mut sse = 0.0f64;
    for idx in test.batch_indices(500, None, false)? {
        let x = test.tensor(&idx, model.device())?;
        let latent = model.encode(&x, Mode::Eval)?;
        codes.extend(latent.mean().flatten_all()?.to_vec1::<f32>()?);
        let r = model.decode(latent.mean(), false)?.reshape(x.dims())?;
        sse += f64::from((r - &x)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let ae_sse = sse / test.len().max(1) as f64;
    let codes = Dataset::new(
        "latent codes",
        vec![dim],
        codes,
        test.labels().map(<[u32]>::to_vec),
    )?;
    let points: Vec<(f64, f64)> = if dim == 2 {
        (0..codes.len())
            .map(|i| (f64::from(codes.sample(i)[0]), f64::from(codes.sample(i)[1])))
            .collect()
    } else if dim == 1 {
        (0..codes.len())
            .map(|i| (f64::from(codes.sample(i)[0]), 0.0))
            .collect()
    } else {
        let pca = ae_train::Pca::fit(&codes, 2)?;
        (0..codes.len())
            .map(|i| {
                let p = pca.transform(codes.sample(i));
                (p[0], p[1])
            })
            .collect()
    };
    let title = if dim > 2 {
        format!("latent codes ({dim}-D), first two principal components")
    } else {
        format!("latent codes ({dim}-D)")
    };
    plot::scatter(plot_path, &title, &points, codes.labels())?;
    let k = dim.min(test.per_sample());
    let pca_sse = ae_train::Pca::fit(&prepared.train.input, k)?.sse_per_sample(test);
    if json {
        println!(
            "{}",
            serde_json::json!({"latent_dim": dim, "samples": test.len(), "ae_sse_per_sample": ae_sse, "pca_components": k, "pca_sse_per_sample": pca_sse, "plot": plot_path})
        );
    } else {
        println!(
            "{} test samples, latent of {dim} values; picture in {}",
            test.len(),
            plot_path.display()
        );
        println!(
            "reconstruction error per sample: ae {ae_sse:.4}, PCA with {k} components {pca_sse:.4}"
        );
    }
    Ok(())
}

/// 3×3 median filter of one `H × W` plane (edges replicated).
fn median3(img: &[f32], h: usize, w: usize) -> Vec<f32> {
    let at = |y: isize, x: isize| {
        img[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize]
    };
    let mut out = vec![0f32; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut v = [0f32; 9];
            let mut k = 0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    v[k] = at(y + dy, x + dx);
                    k += 1;
                }
            }
            v.sort_by(f32::total_cmp);
            out[y as usize * w + x as usize] = v[4];
        }
    }
    out
}

/// Separable Gaussian blur of one `H × W` plane (edges replicated).
fn gaussian_blur(img: &[f32], h: usize, w: usize, sigma: f64) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; h * w];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let d = j as isize - r;
                    let (yy, xx) = if horizontal {
                        (y, (x + d).clamp(0, w as isize - 1))
                    } else {
                        ((y + d).clamp(0, h as isize - 1), x)
                    };
                    acc += kv * src[yy as usize * w + xx as usize];
                }
                out[y as usize * w + x as usize] = acc;
            }
        }
        out
    };
    pass(&pass(img, true), false)
}

fn psnr_of(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    ae_train::psnr(mse)
}

/// `ae denoise-eval`: PSNR of noisy test images, of classical filters (3×3
/// median; Gaussian blur with the best σ for the set) and of the model, for
/// Gaussian noise σ = 0.5 and salt-and-pepper p = 0.2, clipped to [0, 1].
pub fn denoise_eval(run: &Path, data_dir: Option<PathBuf>, json: bool) -> Result<()> {
    use ae_data::Noise;
    let model = Model::load(run, &Device::Cpu)?;
    let (c, h, w) = image_dims(&model, run)?;
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG))
        .with_context(|| format!("{} is not a training run", run.display()))?;
    let test = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?
        .test
        .input;
    let clean = test.data();
    let per = c * h * w;
    let mut results = Vec::new();
    for noise in [Noise::Gaussian { sigma: 0.5 }, Noise::SaltPepper { p: 0.2 }] {
        let mut noisy = clean.to_vec();
        noise.apply(
            &mut noisy,
            &[c, h, w],
            (0.0, 1.0),
            &mut ae_data::rng(cfg.seed ^ 0xD0E5),
        )?;
        let filtered = |f: &dyn Fn(&[f32]) -> Vec<f32>| -> Vec<f32> {
            noisy.chunks(h * w).flat_map(f).collect()
        };
        let median = psnr_of(&filtered(&|p| median3(p, h, w)), clean);
        let (best_sigma, blur) = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
            .iter()
            .map(|&s| (s, psnr_of(&filtered(&|p| gaussian_blur(p, h, w, s)), clean)))
            .fold(
                (0.0, f64::NEG_INFINITY),
                |a, b| if b.1 > a.1 { b } else { a },
            );
        let mut out = Vec::with_capacity(noisy.len());
        for chunk in noisy.chunks(500 * per) {
            let x = Tensor::from_slice(chunk, (chunk.len() / per, c, h, w), model.device())?;
            out.extend(
                model
                    .infer(&x)?
                    .reconstruction
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        let (noisy_psnr, model_psnr) = (psnr_of(&noisy, clean), psnr_of(&out, clean));
        let label = match noise {
            Noise::Gaussian { sigma } => format!("gaussian sigma {sigma}"),
            Noise::SaltPepper { p } => format!("salt-and-pepper p {p}"),
            other => format!("{other:?}"),
        };
        results.push(serde_json::json!({
            "noise": label, "noisy_psnr": noisy_psnr, "median3_psnr": median, "gaussian_blur_psnr": blur,
            "gaussian_blur_sigma": best_sigma, "ae_psnr": model_psnr,
            "gain_over_noisy": model_psnr - noisy_psnr, "gain_over_best_filter": model_psnr - median.max(blur),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"samples": test.len(), "results": results})
        );
        return Ok(());
    }
    println!(
        "PSNR (dB) on {} test images, noise clipped to [0, 1]",
        test.len()
    );
    println!(
        "{:<26} {:>8} {:>10} {:>14} {:>8}",
        "noise", "noisy", "median 3x3", "Gaussian blur", "ae"
    );
    for r in &results {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<26} {:>8.2} {:>10.2} {:>9.2} (σ {:.2}) {:>8.2}",
            r["noise"].as_str().unwrap_or("?"),
            f("noisy_psnr"),
            f("median3_psnr"),
            f("gaussian_blur_psnr"),
            f("gaussian_blur_sigma"),
            f("ae_psnr")
        );
    }
    Ok(())
}

/// Latent codes (means for VAEs) of every sample, row-major.
fn codes_of(model: &Model, data: &Dataset) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for idx in data.batch_indices(500, None, false)? {
        let x = data.tensor(&idx, model.device())?;
        out.extend(
            model
                .encode(&x, Mode::Eval)?
                .mean()
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
    }
    Ok(out)
}

/// `ae features-eval`: linear-probe accuracy of the latent codes, PCA codes
/// of the same size and raw inputs (multinomial logistic regression fitted on
/// the run's training and validation splits, scored on its test split).
pub fn features_eval(
    run: &Path,
    data_dir: Option<PathBuf>,
    epochs: usize,
    json: bool,
) -> Result<()> {
    let model = Model::load(run, &Device::Cpu)?;
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG))
        .with_context(|| format!("{} is not a training run", run.display()))?;
    let p = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?;
    let train = p.train.input.concat(&p.val.input)?;
    let test = &p.test.input;
    let (Some(ytr), Some(yte)) = (train.labels(), test.labels()) else {
        bail!("{}: the data have no labels to classify", run.display());
    };
    let classes = ytr
        .iter()
        .chain(yte)
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    let dim: usize = model.latent_dims().iter().product();
    let opts = ae_train::LogRegOptions {
        epochs,
        seed: cfg.seed,
        ..Default::default()
    };
    let mut rows = Vec::new();
    let mut probe = |name: String, d: usize, xtr: &[f32], xte: &[f32]| -> Result<()> {
        let started = std::time::Instant::now();
        let m = ae_train::LogisticRegression::fit(xtr, ytr, d, classes, &opts)?;
        let acc_train = m.accuracy(xtr, ytr)?;
        let acc = m.accuracy(xte, yte)?;
        rows.push(serde_json::json!({
            "features": name, "dim": d, "train_accuracy": acc_train, "test_accuracy": acc,
            "seconds": started.elapsed().as_secs_f64(),
        }));
        Ok(())
    };
    let (ctr, cte) = (codes_of(&model, &train)?, codes_of(&model, test)?);
    probe(format!("ae latent codes ({dim})"), dim, &ctr, &cte)?;
    let per = train.per_sample();
    let k = dim.min(per);
    let pca = ae_train::Pca::fit(&train, k)?;
    let project = |d: &Dataset| -> Vec<f32> {
        (0..d.len())
            .flat_map(|i| pca.transform(d.sample(i)).into_iter().map(|v| v as f32))
            .collect()
    };
    probe(
        format!("PCA codes ({k})"),
        k,
        &project(&train),
        &project(test),
    )?;
    probe(
        format!("raw inputs ({per})"),
        per,
        train.data(),
        test.data(),
    )?;
    if json {
        println!(
            "{}",
            serde_json::json!({"train_samples": train.len(), "test_samples": test.len(), "classes": classes, "epochs": epochs, "probes": rows})
        );
    } else {
        println!(
            "linear probe (multinomial logistic regression, {epochs} epochs): {} training, {} test samples, {classes} classes",
            train.len(),
            test.len()
        );
        println!("| features | dim | train accuracy | test accuracy |");
        println!("| --- | ---: | ---: | ---: |");
        for r in &rows {
            println!(
                "| {} | {} | {:.2}% | {:.2}% |",
                r["features"].as_str().unwrap_or(""),
                r["dim"],
                100.0 * r["train_accuracy"].as_f64().unwrap_or(f64::NAN),
                100.0 * r["test_accuracy"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classical_filters_keep_constants_and_remove_a_speck() {
        let mut img = vec![0.5f32; 25];
        assert!(median3(&img, 5, 5).iter().all(|&v| v == 0.5));
        assert!(
            gaussian_blur(&img, 5, 5, 1.0)
                .iter()
                .all(|&v| (v - 0.5).abs() < 1e-6)
        );
        img[12] = 1.0;
        assert_eq!(median3(&img, 5, 5)[12], 0.5);
        let b = gaussian_blur(&img, 5, 5, 1.0);
        assert!(b[12] < 1.0 && b[12] > 0.5 && b[11] > 0.5);
        assert!((psnr_of(&[0.0, 1.0], &[0.0, 1.0]) - 120.0).abs() < 1e-6);
    }
}
