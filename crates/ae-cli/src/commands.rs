//! The subcommands.

use std::path::{Path, PathBuf};

use ae_core::{Encoder, Model, ModelConfig};
use ae_train::{TrainConfig, TrainOptions, TrainReport, files};
use anyhow::{Context, Result, bail};
use candle_core::Device;

fn device() -> Device {
    Device::Cpu
}

fn print_report(r: &TrainReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let d = r.run_dir.display();
    println!("run directory: {d}");
    println!("data:          {}", r.data);
    println!(
        "epochs:        {}{} (best: epoch {}, validation loss {:.6})",
        r.epochs,
        if r.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        r.best_epoch,
        r.best_val_loss
    );
    println!(
        "test MSE:      {:.6} per value ({:.3} per sample), PSNR {:.2} dB on {} samples",
        r.test.mse, r.test.sse_per_sample, r.test.psnr, r.test.samples
    );
    if let Some(e) = r.test.neg_elbo {
        println!("test -ELBO:    {e:.3} per sample");
    }
    println!(
        "plots:         {d}/{} {d}/{}",
        files::LOSS_PNG,
        files::RECON_PNG
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn train(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    out: Option<PathBuf>,
    epochs: Option<usize>,
    lambda: Option<f64>,
    resume: Option<PathBuf>,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let mut cfg = config.as_deref().map(TrainConfig::from_file).transpose()?;
    if let (Some(c), Some(l)) = (cfg.as_mut(), lambda) {
        c.train.lambda = Some(l);
        c.validate()?;
    }
    let opts = TrainOptions {
        out,
        data_dir,
        epochs,
        quiet,
        device: device(),
    };
    let report = match resume {
        Some(dir) => ae_train::resume(&dir, cfg.as_ref(), &opts)
            .with_context(|| format!("cannot resume {}", dir.display()))?,
        None => {
            let cfg = cfg.expect("clap requires --config without --resume");
            ae_train::train(cfg, &opts)?
        }
    };
    print_report(&report, json)
}

fn load_run(dir: &Path) -> Result<(TrainConfig, Model)> {
    let cfg = TrainConfig::from_file(&dir.join(files::CONFIG))
        .with_context(|| format!("{} is not a training run directory", dir.display()))?;
    let model = Model::load(dir, &device())?;
    Ok((cfg, model))
}

pub fn eval(
    dir: &Path,
    data_dir: Option<PathBuf>,
    iw_samples: usize,
    iw_limit: Option<usize>,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let (cfg, model) = load_run(dir)?;
    let data = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?;
    let saved = crate::usemodel::normalizer(dir)?;
    if saved != data.normalizer {
        bail!(
            "{}: the data differ from those the model was trained on (normalisation statistics do not match)",
            dir.display()
        );
    }
    let range = ae_train::data_range(&data.train.input);
    let noise = cfg.data.noise.as_ref().map(|n| (n, range));
    let m = ae_train::evaluate(
        &model,
        &data.test,
        &cfg.train,
        noise,
        cfg.seed ^ 0x7E57,
        512,
    )?;
    let nll = if model.config().is_variational() && cfg.data.binarize && iw_samples > 0 {
        let n = iw_limit.unwrap_or(usize::MAX).min(data.test.len());
        let bar = if quiet || json {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(n as u64)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "importance sampling (k = {msg}) {wide_bar} {pos}/{len} images {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(iw_samples.to_string());
        let e = ae_train::importance_nll(
            &model,
            &data.test,
            iw_samples,
            iw_limit,
            cfg.seed ^ 0x1A5,
            |done| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        Some(e)
    } else {
        None
    };
    if json {
        let mut v = serde_json::to_value(&m)?;
        if let (Some(o), Some(e)) = (v.as_object_mut(), &nll) {
            o.insert("nll".into(), serde_json::to_value(e)?);
        }
        println!("{v}");
    } else {
        println!("test samples: {}", m.samples);
        println!(
            "MSE:          {:.6} per value, {:.3} per sample",
            m.mse, m.sse_per_sample
        );
        println!("PSNR:         {:.2} dB", m.psnr);
        if let Some(e) = m.neg_elbo {
            println!(
                "-ELBO:        {e:.3} per sample (KL {:.3})",
                m.kl.unwrap_or(0.0)
            );
        }
        if let Some(b) = m.bpp {
            println!("rate:         {b:.4} bits per value (estimated from the learned density)");
        }
        if let Some(e) = &nll {
            println!(
                "NLL:          {:.2} nats per image ({}, {} images)",
                e.nll, e.bound, e.images
            );
        } else if model.config().is_variational() && !cfg.data.binarize {
            println!("NLL:          not estimated (needs binary data: data.binarize = true)");
        }
    }
    Ok(())
}

pub fn inspect(dir: &Path, json: bool) -> Result<()> {
    let model = Model::load(dir, &device())?;
    let info = serde_json::json!({
        "kind": model.config().kind(),
        "variational": model.config().is_variational(),
        "input_dims": model.input_dims(),
        "latent_dims": model.latent_dims(),
        "parameters": model.num_parameters(),
        "model": model.config(),
    });
    if json {
        println!("{info}");
    } else {
        println!(
            "kind:        {}{}",
            model.config().kind(),
            if model.config().is_variational() {
                " (variational)"
            } else {
                ""
            }
        );
        println!("input:       N x {:?}", model.input_dims());
        println!("latent:      N x {:?}", model.latent_dims());
        println!("parameters:  {}", model.num_parameters());
        println!(
            "config:      {}",
            serde_json::to_string_pretty(model.config())?
        );
    }
    Ok(())
}

pub fn pca(
    config: &Path,
    data_dir: Option<PathBuf>,
    components: &[usize],
    json: bool,
) -> Result<()> {
    let cfg = TrainConfig::from_file(config)?;
    let data = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, data_dir.as_deref())?;
    let mut rows = Vec::new();
    for &k in components {
        let t = std::time::Instant::now();
        let p = ae_train::Pca::fit(&data.train.input, k)?;
        let sse = p.sse_per_sample(&data.test.input);
        let mse = sse / data.test.input.per_sample() as f64;
        rows.push(serde_json::json!({
            "components": k, "sse_per_sample": sse, "mse": mse, "psnr": ae_train::psnr(mse),
            "fit_seconds": t.elapsed().as_secs_f64(),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"data": data.description, "train": data.train.len(), "test": data.test.len(), "pca": rows})
        );
    } else {
        println!(
            "PCA fitted on {} training samples of {}, scored on {} test samples",
            data.train.len(),
            data.description,
            data.test.len()
        );
        for r in &rows {
            println!(
                "{:>4} components: {:.3} squared error per sample, PSNR {:.2} dB",
                r["components"],
                r["sse_per_sample"].as_f64().unwrap_or(f64::NAN),
                r["psnr"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

pub fn presets() -> Result<()> {
    println!("{:<18} {:>10}  {:<16} latent", "preset", "params", "input");
    for name in ae_core::PRESETS {
        let cfg = ModelConfig::preset(name)?;
        let m = Model::new(cfg.clone(), 0, &device())?;
        println!(
            "{name:<18} {:>10}  {:<16} {:?}",
            m.num_parameters(),
            format!("{:?}", cfg.input_dims()),
            cfg.latent_dims()
        );
    }
    Ok(())
}

fn median_seconds(mut f: impl FnMut() -> Result<()>, warm: usize, reps: usize) -> Result<f64> {
    for _ in 0..warm {
        f()?;
    }
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

fn report(name: &str, value: f64, unit: &str, batch: usize) {
    println!("{name}: {value:.3} {unit}");
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    println!(
        "JSON {}",
        serde_json::json!({"figure": name, "value": value, "unit": unit, "batch": batch, "threads": threads, "ae": env!("CARGO_PKG_VERSION")})
    );
}

/// Peak resident memory of this process, in MiB (Linux; `None` elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The speed figures of the mnist-conv model, as `torch_reference.py`
/// measures them: MSE, AdamW (lr 1e-3), random inputs in [0, 1).
pub fn bench(mode: &str, steps: usize, batch: usize) -> Result<()> {
    use ae_core::{Autoencoder, ConvAeConfig, Mode};
    if !["train", "infer", "all"].contains(&mode) {
        bail!("--mode must be train, infer or all, found `{mode}`");
    }
    let dev = device();
    let model = Model::new(ModelConfig::Conv(ConvAeConfig::mnist()), 0, &dev)?;
    let mut rng = ae_core::rng(0);
    let uniform = |n: usize, rng: &mut ae_core::Rng| -> Result<candle_core::Tensor> {
        use rand::Rng as _;
        let v: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
        Ok(candle_core::Tensor::from_vec(v, (n, 1, 28, 28), &dev)?)
    };
    let x = uniform(batch, &mut rng)?;
    if mode == "train" || mode == "all" {
        let mut opt = ae_train::Optimizer::new(
            ae_train::OptimizerConfig::Adamw {
                lr: 1e-3,
                weight_decay: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            model.trainable_named_vars(),
        )?;
        let mut step_rng = ae_core::rng(1);
        let secs = median_seconds(
            || {
                // As the trainer: the fused step where the model takes it.
                if let Some(step) = model.mse_step(&x, &x)? {
                    opt.step(&step.grads, 1e-3)?;
                } else {
                    let out = model.forward(&x, Mode::Train(&mut step_rng))?;
                    let loss = ae_core::layers::mse(&out.reconstruction, &x)?;
                    opt.step(&loss.backward()?, 1e-3)?;
                }
                Ok(())
            },
            3,
            steps,
        )?;
        report(
            "train_images_per_second",
            batch as f64 / secs,
            "img/s",
            batch,
        );
    }
    if mode == "infer" || mode == "all" {
        let secs = median_seconds(
            || {
                model.infer(&x)?;
                Ok(())
            },
            3,
            steps,
        )?;
        report(
            "infer_images_per_second",
            batch as f64 / secs,
            "img/s",
            batch,
        );
        let one = uniform(1, &mut rng)?;
        let secs = median_seconds(
            || {
                model.infer(&one)?;
                Ok(())
            },
            10,
            steps * 10,
        )?;
        report("infer_latency_b1_ms", secs * 1e3, "ms", 1);
    }
    if let Some(rss) = peak_rss_mib() {
        report("peak_rss", rss, "MiB", batch);
    }
    Ok(())
}
