//! The training loop, written once for every architecture, and the run
//! directory it keeps.
//!
//! A run directory holds:
//!
//! - `config.json`: the whole [`TrainConfig`] (with `format_version` and the
//!   nested `model`), so `ae_core::Model::load(dir)` reloads the best model;
//! - `model.safetensors`: the weights with the best validation loss;
//! - `last-eNNNN.safetensors` and `optimizer-eNNNN.safetensors`: the last
//!   completed epoch's weights and optimiser state, named by `state.json`;
//! - `state.json`: the resume point (written last, atomically, so a run killed
//!   at any moment resumes from its last completed epoch);
//! - `normalizer.json`: statistics fitted on the training split;
//! - `metrics.jsonl`: one line per epoch; `test.json`: the final test metrics;
//! - `loss.png`, `reconstructions.png`, and for VAEs `samples.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ae_core::{Autoencoder, Decoder, Encoder, Mode, Model};
use ae_data::{Dataset, Normalizer};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{LossKind, TrainConfig};
use crate::data::{Part, Prepared, prepare};
use crate::error::{Error, Result};
use crate::eval::{EvalMetrics, evaluate};
use crate::loss::objective;
use crate::optim::{Grads, Optimizer, clip_grad_norm};
use crate::plot;

/// Files of a run directory.
pub mod files {
    /// The whole training config.
    pub const CONFIG: &str = "config.json";
    /// Best weights.
    pub const BEST: &str = "model.safetensors";
    /// Resume point.
    pub const STATE: &str = "state.json";
    /// Fitted normaliser.
    pub const NORMALIZER: &str = "normalizer.json";
    /// One JSON line per epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// Final test metrics.
    pub const TEST: &str = "test.json";
    /// Loss curves.
    pub const LOSS_PNG: &str = "loss.png";
    /// Inputs above reconstructions.
    pub const RECON_PNG: &str = "reconstructions.png";
    /// VAE samples from the prior.
    pub const SAMPLES_PNG: &str = "samples.png";
}

/// Options that are not part of the experiment itself.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Run directory (default: `runs/<name>`, with `-2`, `-3`… if taken).
    pub out: Option<PathBuf>,
    /// Replaces the directory of an IDX data source.
    pub data_dir: Option<PathBuf>,
    /// Replaces `train.epochs`.
    pub epochs: Option<usize>,
    /// No progress bars.
    pub quiet: bool,
    /// Where to compute.
    pub device: Device,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            out: None,
            data_dir: None,
            epochs: None,
            quiet: false,
            device: Device::Cpu,
        }
    }
}

/// The resume point of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// Completed epochs.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub global_step: u64,
    /// Best validation loss so far.
    pub best_val_loss: f64,
    /// Epoch of the best validation loss.
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
    /// File with the last epoch's weights.
    pub weights: String,
    /// File with the last epoch's optimiser state.
    pub optimizer: String,
    /// Whether training has ended (all epochs, or early stopping).
    pub finished: bool,
    /// Whether early stopping ended it (a resumed run then stays stopped).
    pub stopped_early: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training objective over the epoch's batches.
    pub train_loss: f64,
    /// Validation objective.
    pub val_loss: f64,
    /// Validation mean squared error per value.
    pub val_mse: f64,
    /// Validation PSNR (dB, data in [0, 1]).
    pub val_psnr: f64,
    /// Validation KL per sample (VAE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// KL weight used in this epoch's last step (VAE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// Validation bits per input value (codec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpp: Option<f64>,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Where the data came from.
    pub data: String,
    /// Epochs completed in all.
    pub epochs: usize,
    /// Epoch of the kept (best) weights.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Test metrics of the best weights.
    pub test: EvalMetrics,
}

fn epoch_rng(seed: u64, epoch: usize) -> ae_data::Rng {
    ae_data::rng(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    ae_core::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::run_dir(path, format!("invalid JSON: {e}")))
}

/// Picks `runs/<name>`, or the first free `runs/<name>-N`.
pub fn default_run_dir(name: &str) -> PathBuf {
    let base = PathBuf::from("runs").join(name);
    if !base.exists() {
        return base;
    }
    (2..)
        .map(|i| PathBuf::from("runs").join(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// Trains a new run.
pub fn train(mut cfg: TrainConfig, opts: &TrainOptions) -> Result<TrainReport> {
    if let Some(e) = opts.epochs {
        cfg.train.epochs = e;
    }
    cfg.format_version = Some(ae_core::FORMAT_VERSION);
    cfg.validate()?;
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&cfg.name));
    if dir.join(files::CONFIG).exists() || dir.join(files::STATE).exists() {
        return Err(Error::run_dir(
            &dir,
            "already holds a run: pass `--resume` to continue it, or another `--out`",
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let data = prepare(&cfg.data, &cfg.model, cfg.seed, opts.data_dir.as_deref())?;
    let model = Model::new(cfg.model.clone(), cfg.seed, &opts.device)?;
    let vars = model.trainable_named_vars();
    let optimizer = Optimizer::new(cfg.train.optimizer, vars)?;
    write_json(&dir.join(files::CONFIG), &cfg)?;
    write_json(&dir.join(files::NORMALIZER), &data.normalizer)?;
    run(&cfg, &dir, data, model, optimizer, None, opts)
}

/// Continues the run in `dir` from its last completed epoch. With `expected`,
/// the run's model must be the same as that config's. `opts.epochs` may extend
/// the run.
pub fn resume(
    dir: &Path,
    expected: Option<&TrainConfig>,
    opts: &TrainOptions,
) -> Result<TrainReport> {
    let cfg_path = dir.join(files::CONFIG);
    let mut cfg: TrainConfig = TrainConfig::from_file(&cfg_path)?;
    if let Some(want) = expected
        && want.model != cfg.model
    {
        return Err(Error::run_dir(
            &cfg_path,
            format!(
                "holds a different model ({} {}) than the given config ({} {}): refusing to resume",
                cfg.model.kind(),
                serde_json::to_string(&cfg.model).unwrap_or_default(),
                want.model.kind(),
                serde_json::to_string(&want.model).unwrap_or_default()
            ),
        ));
    }
    if let Some(e) = opts.epochs {
        cfg.train.epochs = e;
        write_json(&cfg_path, &cfg)?;
    }
    let state: RunState = read_json(&dir.join(files::STATE))?;
    let data = prepare(&cfg.data, &cfg.model, cfg.seed, opts.data_dir.as_deref())?;
    let saved: Normalizer = read_json(&dir.join(files::NORMALIZER))?;
    if saved != data.normalizer {
        return Err(Error::run_dir(
            dir.join(files::NORMALIZER),
            "the data differ from those the run was started with",
        ));
    }
    let model = Model::new(cfg.model.clone(), cfg.seed, &opts.device)?;
    model.load_weights(&dir.join(&state.weights))?;
    let vars = model.trainable_named_vars();
    let mut optimizer = Optimizer::new(cfg.train.optimizer, vars)?;
    optimizer.load(&dir.join(&state.optimizer))?;
    // Drop metric lines of epochs after the resume point (a killed epoch).
    let metrics_path = dir.join(files::METRICS);
    let kept: Vec<EpochMetrics> = read_metrics(&metrics_path)?
        .into_iter()
        .filter(|m| m.epoch <= state.epoch)
        .collect();
    write_metrics(&metrics_path, &kept)?;
    tracing::info!("resuming {} after epoch {}", dir.display(), state.epoch);
    run(&cfg, dir, data, model, optimizer, Some(state), opts)
}

/// Reads `metrics.jsonl` (empty when absent).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::run_dir(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn write_metrics(path: &Path, metrics: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for m in metrics {
        text.push_str(&serde_json::to_string(m).expect("serialisable"));
        text.push('\n');
    }
    ae_core::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The smallest and largest value in `d` (the range noise is clipped to).
pub fn data_range(d: &Dataset) -> (f32, f32) {
    d.data()
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &TrainConfig,
    dir: &Path,
    data: Prepared,
    model: Model,
    mut optimizer: Optimizer,
    state: Option<RunState>,
    opts: &TrainOptions,
) -> Result<TrainReport> {
    let t = &cfg.train;
    let device = &opts.device;
    let range = data_range(&data.train.input);
    let noise = cfg.data.noise.as_ref().map(|n| (n, range));
    let mut drop_last = t.drop_last;
    if data.train.len() < t.batch_size {
        drop_last = false;
    }
    let steps_per_epoch = data
        .train
        .input
        .batch_indices(t.batch_size, None, drop_last)?
        .len();
    let total_steps = steps_per_epoch * t.epochs;
    let vars = model.trainable_named_vars();
    let mut st = state.unwrap_or(RunState {
        epoch: 0,
        global_step: 0,
        best_val_loss: f64::INFINITY,
        best_epoch: 0,
        bad_epochs: 0,
        weights: String::new(),
        optimizer: String::new(),
        finished: false,
        stopped_early: false,
    });
    let mut history = read_metrics(&dir.join(files::METRICS))?;
    let vae = model.is_variational();
    let lambda = t.lambda.unwrap_or(0.0);
    let val_part = if data.val.is_empty() {
        &data.train
    } else {
        &data.val
    };
    tracing::info!(
        "training {} ({} parameters) on {}: {} train / {} validation / {} test samples, {} epochs of {} steps",
        cfg.model.kind(),
        model.num_parameters(),
        data.description,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        t.epochs,
        steps_per_epoch
    );
    let mut stopped_early = st.stopped_early;
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    while !stopped_early && st.epoch < t.epochs {
        let epoch = st.epoch + 1;
        let started = Instant::now();
        let mut rng = epoch_rng(cfg.seed, epoch);
        let order = data
            .train
            .input
            .batch_indices(t.batch_size, Some(&mut rng), drop_last)?;
        let bar = if opts.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(order.len() as u64)
        };
        bar.set_style(style.clone());
        bar.set_prefix(format!("epoch {epoch}/{}", t.epochs));
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let (mut lr, mut beta) = (0.0, t.beta);
        for (b, idx) in order.iter().enumerate() {
            let mut x = data.train.input.tensor(idx, device)?;
            if cfg.data.binarize {
                x = ae_data::binarize_tensor(&x, &mut rng)?;
            }
            let target = match &data.train.target {
                Some(tg) => tg.tensor(idx, device)?,
                None => x.clone(),
            };
            if let Some((n, r)) = noise {
                x = n.corrupt(&x, r, &mut rng)?;
            }
            let progress = st.global_step as f64 / steps_per_epoch.max(1) as f64;
            beta = if t.kl_warmup_epochs > 0.0 {
                t.beta * (progress / t.kl_warmup_epochs).min(1.0)
            } else {
                t.beta
            };
            // A plain model's MSE step runs fused on the CPU when it can
            // (`Autoencoder::mse_step`); anything else through candle's graph.
            let fused = if t.loss == LossKind::Mse {
                model.mse_step(&x, &target)?
            } else {
                None
            };
            let (value, mut grads) = match fused {
                Some(step) => (step.loss, BatchGrads::Fused(step.grads)),
                None => {
                    let out = model.forward(&x, Mode::Train(&mut rng))?;
                    let target = target.reshape(out.reconstruction.dims())?;
                    let obj = objective(t.loss, &out, &target, beta, lambda)?;
                    let value = obj.total.to_scalar::<f32>()?;
                    (value, BatchGrads::Graph(obj.total.backward()?))
                }
            };
            if !value.is_finite() {
                bar.abandon();
                return Err(Error::NonFiniteLoss {
                    epoch,
                    batch: b + 1,
                    value,
                    last_good: st.epoch,
                });
            }
            if let Some(max) = t.grad_clip {
                clip_grad_norm(&mut grads, &vars, max)?;
            }
            lr = t.optimizer.lr()
                * t.schedule
                    .factor(st.global_step as usize, steps_per_epoch, total_steps);
            optimizer.step(&grads, lr)?;
            st.global_step += 1;
            loss_sum += f64::from(value) * idx.len() as f64;
            seen += idx.len();
            bar.inc(1);
            if b % 4 == 0 || b + 1 == order.len() {
                let ips = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "loss {:.5} · {ips:.0} img/s",
                    loss_sum / seen as f64
                ));
            }
        }
        let train_secs = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let val = evaluate(&model, val_part, t, noise, cfg.seed ^ 0xA11D, 512)?;
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: val.loss,
            val_mse: val.mse,
            val_psnr: val.psnr,
            kl: val.kl,
            beta: vae.then_some(beta),
            bpp: val.bpp,
            lr,
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_secs.max(1e-9),
        };
        tracing::info!(
            "epoch {epoch}/{}: train {:.5}  val {:.5}  PSNR {:.2} dB  lr {:.2e}  {:.1}s  {:.0} img/s",
            t.epochs,
            m.train_loss,
            m.val_loss,
            m.val_psnr,
            m.lr,
            m.seconds,
            m.images_per_second
        );
        // Checkpoint: epoch files, best weights, metrics, then the state
        // (the commit point), then drop the previous epoch's files.
        let weights = format!("last-e{epoch:04}.safetensors");
        let opt_file = format!("optimizer-e{epoch:04}.safetensors");
        model.save_weights(&dir.join(&weights))?;
        optimizer.save(&dir.join(&opt_file))?;
        let min_delta = t.early_stopping.map_or(0.0, |e| e.min_delta);
        if m.val_loss < st.best_val_loss - min_delta || st.best_epoch == 0 {
            st.best_val_loss = m.val_loss;
            st.best_epoch = epoch;
            st.bad_epochs = 0;
            model.save_weights(&dir.join(files::BEST))?;
        } else {
            st.bad_epochs += 1;
        }
        history.push(m);
        write_metrics(&dir.join(files::METRICS), &history)?;
        let previous = (
            std::mem::replace(&mut st.weights, weights),
            std::mem::replace(&mut st.optimizer, opt_file),
        );
        st.epoch = epoch;
        if let Some(es) = t.early_stopping
            && st.bad_epochs >= es.patience
        {
            tracing::info!(
                "early stopping: no improvement for {} epochs (best: epoch {})",
                st.bad_epochs,
                st.best_epoch
            );
            stopped_early = true;
        }
        st.stopped_early = stopped_early;
        st.finished = stopped_early || epoch == t.epochs;
        write_json(&dir.join(files::STATE), &st)?;
        for f in [previous.0, previous.1] {
            if !f.is_empty() {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
        // An autoregressive decoder generates pixel by pixel: its samples
        // cost seconds, so they are drawn once, after training.
        let samples = !model.is_autoregressive();
        draw_epoch(dir, &history, &model, &data, noise, cfg.seed, samples)?;
    }
    // Test the best weights.
    model.load_weights(&dir.join(files::BEST))?;
    let test = evaluate(&model, &data.test, t, noise, cfg.seed ^ 0x7E57, 512)?;
    write_json(&dir.join(files::TEST), &test)?;
    draw_epoch(dir, &history, &model, &data, noise, cfg.seed, true)?;
    Ok(TrainReport {
        run_dir: dir.to_path_buf(),
        data: data.description,
        epochs: st.epoch,
        best_epoch: st.best_epoch,
        best_val_loss: st.best_val_loss,
        stopped_early,
        test,
    })
}

/// Inverts the normaliser on a copy of a sample so it can be drawn.
fn denorm(n: &Normalizer, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    let per = v.len();
    if n.invert(&mut v, per).is_err() {
        return v;
    }
    v
}

fn draw_epoch(
    dir: &Path,
    history: &[EpochMetrics],
    model: &Model,
    data: &Prepared,
    noise: Option<(&ae_data::Noise, (f32, f32))>,
    seed: u64,
    samples: bool,
) -> Result<()> {
    let pts = |f: fn(&EpochMetrics) -> f64| {
        history
            .iter()
            .map(|m| (m.epoch as f64, f(m)))
            .collect::<Vec<_>>()
    };
    plot::loss_curves(
        &dir.join(files::LOSS_PNG),
        "loss",
        &[
            ("train", pts(|m| m.train_loss)),
            ("validation", pts(|m| m.val_loss)),
        ],
    )?;
    let part: &Part = if data.val.is_empty() {
        &data.train
    } else {
        &data.val
    };
    let k = part.len().min(8);
    if k == 0 {
        return Ok(());
    }
    let idx: Vec<usize> = (0..k).collect();
    let device = model.device();
    let mut x = part.input.tensor(&idx, device)?;
    if let Some((n, r)) = noise {
        x = n.corrupt(&x, r, &mut ae_data::rng(seed))?;
    }
    let recon = model.infer(&x)?.reconstruction;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let rs = recon.flatten_all()?.to_vec1::<f32>()?;
    let per = part.input.per_sample();
    let norm = &data.normalizer;
    let inputs: Vec<Vec<f32>> = xs.chunks(per).map(|s| denorm(norm, s)).collect();
    let recons: Vec<Vec<f32>> = rs.chunks(per).map(|s| denorm(norm, s)).collect();
    let dims = part.input.sample_dims();
    let is_image = matches!(dims, [1 | 3, _, _]);
    if is_image {
        let mut rows = vec![
            inputs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            recons.iter().map(Vec::as_slice).collect(),
        ];
        let targets: Vec<Vec<f32>>;
        if part.target.is_some() || noise.is_some() {
            targets = (0..k)
                .map(|i| denorm(norm, part.target().sample(i)))
                .collect();
            rows.push(targets.iter().map(Vec::as_slice).collect());
        }
        plot::image_grid(&dir.join(files::RECON_PNG), &rows, dims, 3)?;
    } else {
        // First channel of each of up to four samples.
        let len = *dims.last().expect("non-empty dims");
        let pairs: Vec<(&[f32], &[f32])> = inputs
            .iter()
            .zip(&recons)
            .take(4)
            .map(|(a, b)| (&a[..len], &b[..len]))
            .collect();
        plot::signal_pairs(&dir.join(files::RECON_PNG), &pairs)?;
    }
    if samples && model.is_variational() && is_image {
        let mut zd = vec![64];
        zd.extend(model.latent_dims());
        let mut rng = ae_core::rng(seed ^ 0x5A3);
        let z = ae_core::randn(&mut rng, &zd, device)?;
        let s = model
            .generate(&z, &mut rng)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let samples: Vec<Vec<f32>> = s.chunks(per).map(|v| denorm(norm, v)).collect();
        let rows: Vec<Vec<&[f32]>> = samples
            .chunks(8)
            .map(|r| r.iter().map(Vec::as_slice).collect())
            .collect();
        plot::image_grid(&dir.join(files::SAMPLES_PNG), &rows, dims, 3)?;
    }
    Ok(())
}

/// A batch's gradients: from candle's graph, or from a fused step.
enum BatchGrads {
    Graph(candle_core::backprop::GradStore),
    Fused(ae_core::Gradients),
}

impl Grads for BatchGrads {
    fn grad(&self, param: &candle_core::Tensor) -> Option<&candle_core::Tensor> {
        match self {
            BatchGrads::Graph(g) => g.grad(param),
            BatchGrads::Fused(g) => g.grad(param),
        }
    }

    fn set_grad(&mut self, param: &candle_core::Tensor, grad: candle_core::Tensor) {
        match self {
            BatchGrads::Graph(g) => g.set_grad(param, grad),
            BatchGrads::Fused(g) => g.set_grad(param, grad),
        }
    }
}
