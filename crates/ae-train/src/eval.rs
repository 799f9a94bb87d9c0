//! Evaluation: reconstruction error, PSNR and, for VAEs, the negative ELBO.

use ae_core::{Autoencoder, Latent, Mode, Model};
use ae_data::Noise;
use serde::{Deserialize, Serialize};

use crate::config::LossKind;
use crate::data::Part;
use crate::error::Result;
use crate::loss;

/// Metrics over a split, in evaluation mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Samples evaluated.
    pub samples: usize,
    /// Mean squared error per value.
    pub mse: f64,
    /// `10·log10(1 / mse)`: PSNR in dB for data in [0, 1].
    pub psnr: f64,
    /// Squared error summed over each sample's values, averaged over samples.
    pub sse_per_sample: f64,
    /// The training objective (full β for VAEs).
    pub loss: f64,
    /// Mean KL per sample (VAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Negative ELBO per sample (VAE): reconstruction loss summed over the
    /// sample plus KL; in nats for the BCE loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neg_elbo: Option<f64>,
}

/// PSNR in dB of a mean squared error, for data in [0, 1].
pub fn psnr(mse: f64) -> f64 {
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// Evaluates `model` on `part` in batches of `batch_size`. With `noise`, the
/// inputs are corrupted (seeded by `seed`) and the clean targets compared.
pub fn evaluate(
    model: &Model,
    part: &Part,
    kind: LossKind,
    beta: f64,
    noise: Option<(&Noise, (f32, f32))>,
    seed: u64,
    batch_size: usize,
) -> Result<EvalMetrics> {
    let device = model.device();
    let mut rng = ae_data::rng(seed);
    let (mut sse, mut values, mut obj, mut kl_sum, mut elbo_sum) =
        (0.0f64, 0usize, 0.0f64, 0.0f64, 0.0f64);
    let n = part.len();
    let per = part.input.per_sample();
    let target = part.target();
    for idx in part.input.batch_indices(batch_size.max(1), None, false)? {
        let mut x = part.input.tensor(&idx, device)?;
        let t = target.tensor(&idx, device)?;
        if let Some((noise, range)) = noise {
            x = noise.corrupt(&x, range, &mut rng)?;
        }
        let out = model.forward(&x, Mode::Eval)?;
        let r = out.reconstruction.reshape(t.dims())?;
        sse += f64::from((&r - &t)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        values += idx.len() * per;
        match &out.latent {
            Latent::Code(_) => {
                obj += f64::from(
                    loss::elementwise(kind, &r, &t)?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                );
            }
            Latent::Gaussian { mu, logvar, .. } => {
                let rec = f64::from(
                    loss::per_sample(kind, &r, &t)?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                );
                let kl = f64::from(
                    loss::kl_per_sample(mu, logvar)?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                );
                obj += rec + beta * kl;
                kl_sum += kl;
                elbo_sum += rec + kl;
            }
        }
    }
    let mse = sse / values.max(1) as f64;
    let vae = model.is_variational();
    Ok(EvalMetrics {
        samples: n,
        mse,
        psnr: psnr(mse),
        sse_per_sample: sse / n.max(1) as f64,
        loss: if vae {
            obj / n.max(1) as f64
        } else {
            obj / values.max(1) as f64
        },
        kl: vae.then(|| kl_sum / n.max(1) as f64),
        neg_elbo: vae.then(|| elbo_sum / n.max(1) as f64),
    })
}
