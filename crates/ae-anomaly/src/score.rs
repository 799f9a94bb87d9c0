//! Anomaly scores from a trained model: what reconstructs badly is abnormal.

use ae_core::{Autoencoder, Decoder, Encoder, Latent, Mode, Model};
use ae_data::Dataset;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a sample is scored (higher = more anomalous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// Mean squared reconstruction error.
    #[default]
    Mse,
    /// Mean absolute reconstruction error.
    L1,
    /// 1 − SSIM between input and reconstruction (images: `C × H × W`;
    /// Gaussian window 11, σ 1.5, data range 1).
    Ssim,
    /// VAE: negative ELBO with a Bernoulli likelihood (binary cross-entropy
    /// summed over the sample) plus the KL term, averaged over `samples`
    /// draws of the posterior.
    NegElbo,
}

/// Scores samples with a model.
#[derive(Debug, Clone, Copy)]
pub struct Scorer {
    /// The score.
    pub kind: ScoreKind,
    /// Samples per input for [`ScoreKind::NegElbo`].
    pub samples: usize,
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Seed of the posterior draws.
    pub seed: u64,
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer {
            kind: ScoreKind::Mse,
            samples: 16,
            batch_size: 500,
            seed: 0,
        }
    }
}

/// Checks that `data`'s samples fit `model`.
pub fn check_fits(model: &Model, data: &Dataset) -> Result<()> {
    let want = model.input_dims();
    let ok = if want.len() == 1 {
        data.per_sample() == want[0]
    } else {
        want == data.sample_dims()
    };
    if ok {
        return Ok(());
    }
    Err(Error::Mismatch(format!(
        "the model takes samples of {want:?}, `{}` has samples of {:?}",
        data.name(),
        data.sample_dims()
    )))
}

impl Scorer {
    /// One score per sample of `data`.
    pub fn score(&self, model: &Model, data: &Dataset) -> Result<Vec<f32>> {
        check_fits(model, data)?;
        if self.kind == ScoreKind::NegElbo && !model.is_variational() {
            return Err(Error::config("score", "neg_elbo needs a variational model"));
        }
        if self.kind == ScoreKind::Ssim && !matches!(data.sample_dims(), [_, _, _]) {
            return Err(Error::config(
                "score",
                format!(
                    "ssim needs images (C x H x W), found samples of {:?}",
                    data.sample_dims()
                ),
            ));
        }
        let mut out = Vec::with_capacity(data.len());
        let mut rng = ae_core::rng(self.seed);
        for idx in data.batch_indices(self.batch_size.max(1), None, false)? {
            let x = data.tensor(&idx, model.device())?;
            out.extend(self.score_batch(model, &x, data.sample_dims(), &mut rng)?);
        }
        Ok(out)
    }

    fn score_batch(
        &self,
        model: &Model,
        x: &Tensor,
        dims: &[usize],
        rng: &mut ae_core::Rng,
    ) -> Result<Vec<f32>> {
        match self.kind {
            ScoreKind::Mse | ScoreKind::L1 => {
                let r = model.infer(x)?.reconstruction;
                let d = (&r - x)?;
                let e = if self.kind == ScoreKind::Mse {
                    d.sqr()?
                } else {
                    d.abs()?
                };
                Ok(e.flatten_from(1)?.mean(1)?.to_vec1::<f32>()?)
            }
            ScoreKind::Ssim => {
                let r = model.infer(x)?.reconstruction;
                let (xs, rs) = (
                    x.flatten_all()?.to_vec1::<f32>()?,
                    r.flatten_all()?.to_vec1::<f32>()?,
                );
                let per: usize = dims.iter().product();
                Ok(xs
                    .chunks(per)
                    .zip(rs.chunks(per))
                    .map(|(a, b)| 1.0 - ssim(a, b, dims) as f32)
                    .collect())
            }
            ScoreKind::NegElbo => {
                let n = x.dim(0)?;
                let mut acc = vec![0f64; n];
                for _ in 0..self.samples.max(1) {
                    let latent = model.encode(x, Mode::Train(rng))?;
                    let Latent::Gaussian { z, mu, logvar } = &latent else {
                        return Err(Error::config("score", "neg_elbo needs a variational model"));
                    };
                    let r = model
                        .decode(z, false)?
                        .reshape(x.dims())?
                        .clamp(1e-6, 1.0 - 1e-6)?;
                    let pos = (x * r.log()?)?;
                    let neg = (x.affine(-1.0, 1.0)? * r.affine(-1.0, 1.0)?.log()?)?;
                    let bce = (pos + neg)?.neg()?;
                    let rec = bce.flatten_from(1)?.sum(1)?;
                    let kl = ((logvar.affine(1.0, 1.0)? - mu.sqr()?)? - logvar.exp()?)?
                        .flatten_from(1)?
                        .sum(1)?
                        .affine(-0.5, 0.0)?;
                    for (a, v) in acc.iter_mut().zip((rec + kl)?.to_vec1::<f32>()?) {
                        *a += f64::from(v);
                    }
                }
                Ok(acc
                    .into_iter()
                    .map(|a| (a / self.samples.max(1) as f64) as f32)
                    .collect())
            }
        }
    }

    /// Per-value squared error maps, in the shape of the inputs.
    ///
    /// # Shapes
    /// `x`: `N × input_dims…`; returns the same shape.
    pub fn error_map(model: &Model, x: &Tensor) -> Result<Tensor> {
        let r = model.infer(x)?.reconstruction;
        Ok((r - x)?.sqr()?)
    }
}

/// Mean SSIM of two `C × H × W` images with values in [0, 1] (Gaussian
/// window of 11, σ = 1.5, truncated at the borders; K1 = 0.01, K2 = 0.03).
pub fn ssim(a: &[f32], b: &[f32], dims: &[usize]) -> f64 {
    let (c, h, w) = match dims {
        [c, h, w] => (*c, *h, *w),
        _ => (1, 1, a.len()),
    };
    let g: Vec<f64> = (-5..=5)
        .map(|i: i32| (-f64::from(i * i) / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for ch in 0..c {
        let pa = &a[ch * h * w..(ch + 1) * h * w];
        let pb = &b[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let (mut sw, mut ma, mut mb, mut saa, mut sbb, mut sab) =
                    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
                for (dy, gy) in g.iter().enumerate() {
                    let yy = y as isize + dy as isize - 5;
                    if yy < 0 || yy >= h as isize {
                        continue;
                    }
                    for (dx, gx) in g.iter().enumerate() {
                        let xx = x as isize + dx as isize - 5;
                        if xx < 0 || xx >= w as isize {
                            continue;
                        }
                        let k = gy * gx;
                        let i = yy as usize * w + xx as usize;
                        let (va, vb) = (f64::from(pa[i]), f64::from(pb[i]));
                        sw += k;
                        ma += k * va;
                        mb += k * vb;
                        saa += k * va * va;
                        sbb += k * vb * vb;
                        sab += k * va * vb;
                    }
                }
                let (ma, mb) = (ma / sw, mb / sw);
                let (va, vb, cov) = (saa / sw - ma * ma, sbb / sw - mb * mb, sab / sw - ma * mb);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            }
        }
    }
    total / (c * h * w) as f64
}

/// A short digest of a model's weights file, to tie thresholds to it.
pub fn model_digest(weights: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(weights).map_err(|e| Error::io(weights, e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssim_is_one_for_equal_images_and_drops_with_noise() {
        let a: Vec<f32> = (0..64).map(|i| (i % 8) as f32 / 8.0).collect();
        assert!((ssim(&a, &a, &[1, 8, 8]) - 1.0).abs() < 1e-9);
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { 1.0 - v } else { *v })
            .collect();
        assert!(ssim(&a, &b, &[1, 8, 8]) < 0.9);
    }
}
