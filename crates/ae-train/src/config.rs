//! The training configuration: one TOML file that nests the model config, the
//! data and the training settings. A run writes it back as `config.json`.

use std::path::{Path, PathBuf};

use ae_core::ModelConfig;
use ae_data::{ColorMode, Noise, NormKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// Everything needed to reproduce a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Checkpoint format version (written by runs; optional in hand-written
    /// files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    /// A short name for the run (used for the default run directory).
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed for initialisation, splits, shuffling, noise and sampling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The model.
    pub model: ModelConfig,
    /// The data.
    pub data: DataConfig,
    /// The optimisation.
    #[serde(default)]
    pub train: TrainSettings,
}

fn default_name() -> String {
    "run".into()
}

fn default_seed() -> u64 {
    42
}

/// Where samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// MNIST IDX files in `dir` (default: `$AE_DATA_DIR/mnist`, else
    /// `data/mnist`); its own test split.
    Mnist {
        /// Directory of the four IDX files.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
    },
    /// Fashion-MNIST IDX files in `dir` (default `data/fashion-mnist`).
    FashionMnist {
        /// Directory of the four IDX files.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
    },
    /// The 2,000 MNIST digits bundled with `ae-data` (no files needed); the
    /// test split is held out.
    MnistSample,
    /// A folder of PNG/JPEG images; `test_dir` or a held-out test split.
    Images {
        /// The training images.
        dir: PathBuf,
        /// Test images (else `test_fraction` of `dir` is held out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_dir: Option<PathBuf>,
        /// Gray or RGB.
        #[serde(default)]
        color: ColorMode,
        /// Resize every image to `[width, height]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resize: Option<[u32; 2]>,
    },
    /// Vectors from a CSV with a header row.
    Csv {
        /// The training file.
        path: PathBuf,
        /// Test file (else a held-out split).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_path: Option<PathBuf>,
        /// A column of integer labels, not a feature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_column: Option<String>,
    },
    /// Windows of a `timestamp,value` series.
    Series {
        /// The CSV file.
        path: PathBuf,
        /// Window length.
        window: usize,
        /// Step between window starts.
        stride: usize,
        /// NAB `combined_windows.json` to label windows (with `key`, the
        /// series' `dir/file.csv` name in it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<PathBuf>,
        /// The series' key in the labels file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The inputs.
    pub source: DataSource,
    /// Targets for paired training (input → target, such as masked → whole);
    /// same length and order as `source`. Without it the target is the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DataSource>,
    /// Train only on these classes (one-class training); evaluation keeps all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<u32>>,
    /// Fraction of the training data held out for validation.
    #[serde(default = "default_val")]
    pub validation_fraction: f64,
    /// Fraction held out for testing when the source has no test split.
    #[serde(default = "default_val")]
    pub test_fraction: f64,
    /// Use at most this many training samples (after filtering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Normalisation fitted on the training split.
    #[serde(default)]
    pub normalize: NormKind,
    /// Fit one offset/scale per feature instead of one for all values.
    #[serde(default)]
    pub per_feature: bool,
    /// Denoising: corrupt inputs with this noise (the target stays clean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// Binary data from values in [0, 1] (dynamically binarised MNIST): each
    /// training batch draws every value as 1 with probability `v`, anew each
    /// time; validation and test are binarised once, with a fixed seed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binarize: bool,
}

fn default_val() -> f64 {
    0.1
}

/// Reconstruction loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error.
    #[default]
    Mse,
    /// Mean absolute error.
    L1,
    /// Binary cross-entropy (outputs and targets in [0, 1]).
    Bce,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam with decoupled weight decay (Adam when `weight_decay = 0`).
    Adamw {
        /// Peak learning rate.
        lr: f64,
        /// Decoupled weight decay.
        #[serde(default = "default_wd")]
        weight_decay: f64,
        /// First-moment decay.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Denominator epsilon.
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Stochastic gradient descent with momentum.
    Sgd {
        /// Peak learning rate.
        lr: f64,
        /// Momentum (0 for plain SGD).
        #[serde(default)]
        momentum: f64,
        /// L2 weight decay.
        #[serde(default)]
        weight_decay: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
    },
}

fn default_wd() -> f64 {
    1e-2
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adamw {
            lr: 1e-3,
            weight_decay: default_wd(),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl OptimizerConfig {
    /// The peak learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => lr,
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        let positive = |f: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(f, format!("must be > 0, found {v}")))
            }
        };
        let unit = |f: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(f, format!("must be in [0, 1), found {v}")))
            }
        };
        let nonneg = |f: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(f, format!("must be >= 0, found {v}")))
            }
        };
        match *self {
            OptimizerConfig::Adamw {
                lr,
                weight_decay,
                beta1,
                beta2,
                eps,
            } => {
                positive("train.optimizer.lr", lr)?;
                nonneg("train.optimizer.weight_decay", weight_decay)?;
                unit("train.optimizer.beta1", beta1)?;
                unit("train.optimizer.beta2", beta2)?;
                positive("train.optimizer.eps", eps)
            }
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
                ..
            } => {
                positive("train.optimizer.lr", lr)?;
                unit("train.optimizer.momentum", momentum)?;
                nonneg("train.optimizer.weight_decay", weight_decay)
            }
        }
    }
}

/// Stop when the validation loss has not improved for `patience` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Reconstruction loss.
    #[serde(default)]
    pub loss: LossKind,
    /// The optimiser.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule (a multiplier of the optimiser's `lr`).
    #[serde(default)]
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Early stopping on the validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// VAE: weight of the KL term.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// VAE: epochs over which the KL weight rises linearly from 0 to `beta`.
    #[serde(default)]
    pub kl_warmup_epochs: f64,
    /// Drop the last partial batch of each epoch.
    #[serde(default = "default_true")]
    pub drop_last: bool,
    /// Codec (a model with an `entropy_bottleneck`): the weight of the rate
    /// in the objective `distortion + λ·rate`, the rate in bits per input
    /// value (bits per pixel for grayscale images). Larger λ: fewer bytes,
    /// lower quality. Required for codecs, refused for other models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
}

fn default_beta() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 10,
            batch_size: 128,
            loss: LossKind::Mse,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Constant,
            grad_clip: None,
            early_stopping: None,
            beta: 1.0,
            kl_warmup_epochs: 0.0,
            drop_last: true,
            lambda: None,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML (or, for `.json`, JSON) config and validates it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: TrainConfig = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| Error::ConfigFile {
                path: path.into(),
                reason: e.to_string(),
            })?
        } else {
            toml::from_str(&text).map_err(|e| Error::ConfigFile {
                path: path.into(),
                reason: e.to_string(),
            })?
        };
        cfg.validate().map_err(|e| Error::ConfigFile {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        if let Some(v) = self.format_version
            && v > ae_core::FORMAT_VERSION
        {
            return Err(Error::config(
                "format_version",
                format!(
                    "{v} is newer than this ae supports ({})",
                    ae_core::FORMAT_VERSION
                ),
            ));
        }
        self.model.validate()?;
        let t = &self.train;
        if t.epochs == 0 {
            return Err(Error::config("train.epochs", "must be at least 1, found 0"));
        }
        if t.batch_size == 0 {
            return Err(Error::config(
                "train.batch_size",
                "must be at least 1, found 0",
            ));
        }
        t.optimizer.validate()?;
        t.schedule.validate()?;
        if let Some(c) = t.grad_clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::config(
                "train.grad_clip",
                format!("must be > 0, found {c}"),
            ));
        }
        let codec =
            matches!(&self.model, ae_core::ModelConfig::Conv(c) if c.entropy_bottleneck.is_some());
        match (codec, t.lambda) {
            (true, None) => {
                return Err(Error::config(
                    "train.lambda",
                    "a model with an entropy_bottleneck needs the rate weight (e.g. lambda = 0.01)",
                ));
            }
            (true, Some(l)) if !(l.is_finite() && l >= 0.0) => {
                return Err(Error::config(
                    "train.lambda",
                    format!("must be >= 0, found {l}"),
                ));
            }
            (false, Some(_)) => {
                return Err(Error::config(
                    "train.lambda",
                    "applies only to a model with an entropy_bottleneck",
                ));
            }
            _ => {}
        }
        if !(t.beta.is_finite() && t.beta >= 0.0) {
            return Err(Error::config(
                "train.beta",
                format!("must be >= 0, found {}", t.beta),
            ));
        }
        if !(t.kl_warmup_epochs.is_finite() && t.kl_warmup_epochs >= 0.0) {
            return Err(Error::config(
                "train.kl_warmup_epochs",
                format!("must be >= 0, found {}", t.kl_warmup_epochs),
            ));
        }
        let d = &self.data;
        for (f, v) in [
            ("data.validation_fraction", d.validation_fraction),
            ("data.test_fraction", d.test_fraction),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::config(f, format!("must be in [0, 1), found {v}")));
            }
        }
        if let Some(n) = &d.noise {
            n.validate()?;
        }
        if d.binarize && (d.noise.is_some() || d.target.is_some()) {
            return Err(Error::config(
                "data.binarize",
                "cannot be combined with noise or a paired target",
            ));
        }
        if d.binarize && d.normalize != ae_data::NormKind::None {
            return Err(Error::config(
                "data.binarize",
                "needs values in [0, 1]: set data.normalize = \"none\"",
            ));
        }
        if let DataSource::Series { window, stride, .. } = d.source
            && (window == 0 || stride == 0)
        {
            return Err(Error::config(
                "data.source",
                "window and stride must be at least 1",
            ));
        }
        Ok(())
    }
}
