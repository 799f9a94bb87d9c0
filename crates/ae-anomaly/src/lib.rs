//! # ae-anomaly: anomaly detection with trained autoencoders
//!
//! What reconstructs badly is abnormal. This crate turns a trained `ae-core`
//! model into a detector: per-sample scores (reconstruction error), per-value
//! error maps, and threshold-free metrics (AUROC). It depends on `ae-core`,
//! never on `ae-train`, so a deployed detector does not link the training
//! code.

use ae_core::{Autoencoder, Mode};
use candle_core::Tensor;

/// Errors of `ae-anomaly`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the model crate.
    #[error(transparent)]
    Core(#[from] ae_core::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Per-value squared reconstruction error.
///
/// # Shapes
/// `x`: `N × input_dims…`; returns the same shape.
pub fn error_map<M: Autoencoder + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    let out = model.forward(x, Mode::Eval)?;
    Ok((out.reconstruction - x)?.sqr()?)
}

/// Mean squared reconstruction error per sample (evaluation mode; the mean of
/// a VAE's posterior is decoded).
///
/// # Shapes
/// `x`: `N × input_dims…`; returns `N` scores.
pub fn mse_scores<M: Autoencoder + ?Sized>(model: &M, x: &Tensor) -> Result<Vec<f32>> {
    Ok(error_map(model, x)?
        .flatten_from(1)?
        .mean(1)?
        .to_vec1::<f32>()?)
}

/// Area under the ROC curve of `scores` for binary `labels` (true =
/// anomalous), with ties counted as one half (the Mann–Whitney statistic).
/// `None` when either class is absent.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_known_values() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auroc(&[1.0, 1.0], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
    }
}
