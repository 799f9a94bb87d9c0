//! # ae-anomaly: anomaly detection with trained autoencoders
//!
//! What reconstructs badly is abnormal. This crate turns a trained `ae-core`
//! model into a detector:
//!
//! - [`Scorer`]: per-sample scores ([`ScoreKind`]: MSE, L1, 1 − SSIM, and for
//!   VAEs the negative ELBO averaged over posterior samples), batched;
//!   per-value error maps;
//! - [`ThresholdMethod`]: manual, percentile, contamination rate (as PyOD),
//!   mean + k·σ, median + k·MAD, Tukey's IQR fence, Otsu, F1-adaptive (as
//!   anomalib); a fitted [`Threshold`] is saved as `threshold.json` beside the
//!   model, tied to its weights by a digest;
//! - [`Detector`]: fit on normal data, `score`, `predict`, `predict_proba`,
//!   in the style of PyOD;
//! - [`metrics`]: AUROC, average precision, precision/recall/F1 and the
//!   confusion matrix at a threshold;
//! - [`write_heatmap`]: PNG overlays of the per-pixel error.
//!
//! It depends on `ae-core` and `ae-data`, never on `ae-train`, so a deployed
//! detector does not link the training code.

mod detector;
mod error;
mod heatmap;
pub mod metrics;
mod score;
mod threshold;

pub use detector::Detector;
pub use error::{Error, Result};
pub use heatmap::write_heatmap;
pub use score::{ScoreKind, Scorer, check_fits, model_digest, ssim};
pub use threshold::{ScoreStats, THRESHOLD_FILE, Threshold, ThresholdMethod, quantile};
