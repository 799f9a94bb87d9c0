//! # ae-train: training for ae models
//!
//! One training loop for every architecture of `ae-core` (conv, dense, 1-D
//! conv and their variational versions), with:
//!
//! - [`TrainConfig`]: one serde type (TOML on disk) nesting the model config,
//!   the data ([`DataConfig`]) and the optimisation ([`TrainSettings`]);
//! - optimisers with saveable state ([`Optimizer`]: AdamW, SGD with momentum)
//!   and gradient clipping; learning-rate [`Schedule`]s (constant, step,
//!   exponential, cosine with warm-up, one-cycle);
//! - losses ([`loss`]: MSE, L1, BCE, the VAE objective with KL annealing);
//! - denoising (noisy input, clean target) and paired (input → target) modes;
//! - [`Pca`], the linear baseline at the same code size (faer);
//! - a run directory with checkpoints, metrics, plots and exact resume
//!   ([`train`], [`resume`]); [`evaluate`] for test metrics.
//!
//! Runs are deterministic on CPU for a given seed: initialisation, splits,
//! shuffling, noise and VAE sampling all come from seeded generators, and the
//! generator of each epoch is derived from the seed and the epoch number, so a
//! resumed run repeats exactly what an uninterrupted one does.

mod config;
mod data;
mod error;
mod eval;
pub mod linear;
pub mod loss;
mod optim;
mod pca;
pub mod plot;
mod schedule;
mod trainer;

pub use config::{
    DataConfig, DataSource, EarlyStopping, LossKind, OptimizerConfig, TrainConfig, TrainSettings,
};
pub use data::{Part, Prepared, check_fits, default_data_dir, prepare};
pub use error::{Error, Result};
pub use eval::{EvalMetrics, NllEstimate, evaluate, importance_nll, psnr};
pub use linear::{LogRegOptions, LogisticRegression};
pub use optim::{Grads, Optimizer, clip_grad_norm};
pub use pca::Pca;
pub use schedule::Schedule;
pub use trainer::{
    EpochMetrics, RunState, TrainOptions, TrainReport, data_range, default_run_dir, files,
    read_metrics, resume, train,
};
