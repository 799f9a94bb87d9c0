//! Evaluation: reconstruction error, PSNR and, for VAEs, the negative ELBO.

use ae_core::{Autoencoder, Decoder, Encoder, Latent, Mode, Model};
use ae_data::Noise;
use serde::{Deserialize, Serialize};

use crate::config::TrainSettings;
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
    /// sample plus KL, the reconstruction term estimated with one latent
    /// sample per input; in nats for the BCE loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neg_elbo: Option<f64>,
    /// Codec: estimated bits per input value of the rounded latent under the
    /// learned density (what the entropy coder approaches, headers aside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpp: Option<f64>,
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
    settings: &TrainSettings,
    noise: Option<(&Noise, (f32, f32))>,
    seed: u64,
    batch_size: usize,
) -> Result<EvalMetrics> {
    let (kind, beta, lambda) = (settings.loss, settings.beta, settings.lambda.unwrap_or(0.0));
    let device = model.device();
    let mut rng = ae_data::rng(seed);
    let (mut sse, mut values, mut obj, mut kl_sum, mut elbo_sum, mut bits_sum) =
        (0.0f64, 0usize, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut codec = false;
    let n = part.len();
    let per = part.input.per_sample();
    let target = part.target();
    for idx in part.input.batch_indices(batch_size.max(1), None, false)? {
        let mut x = part.input.tensor(&idx, device)?;
        let t = target.tensor(&idx, device)?;
        if let Some((noise, range)) = noise {
            x = noise.corrupt(&x, range, &mut rng)?;
        }
        let out = model.infer(&x)?;
        let r = out.reconstruction.reshape(t.dims())?;
        sse += f64::from((&r - &t)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        values += idx.len() * per;
        match &out.latent {
            Latent::Quantized { bits, .. } => {
                codec = true;
                let b = f64::from(bits.sum_all()?.to_scalar::<f32>()?);
                bits_sum += b;
                obj += f64::from(
                    loss::elementwise(kind, &r, &t)?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                ) + lambda * b;
            }
            Latent::Code(_) => {
                obj += f64::from(
                    loss::elementwise(kind, &r, &t)?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                );
            }
            Latent::Gaussian { mu, logvar, .. } => {
                // The ELBO's reconstruction term is an expectation over
                // q(z|x): estimate it with one seeded sample, not at the mean
                // (which would understate the bound). MSE and PSNR above
                // use the mean.
                let eps = ae_core::randn(&mut rng, mu.dims(), device)?;
                let z = (mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
                let r_sampled = model.decode_given(&z, &x, false)?.reshape(t.dims())?;
                let rec = f64::from(
                    loss::per_sample(kind, &r_sampled, &t)?
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
        bpp: codec.then(|| bits_sum / values.max(1) as f64),
    })
}

/// An importance-sampled estimate of the test negative log-likelihood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NllEstimate {
    /// Mean over images of `−log (1/k · Σ_i p(x, z_i) / q(z_i | x))`, in nats:
    /// the IWAE bound with `k` samples (an upper bound on the NLL that
    /// tightens as `k` grows; `k = 1` is the negative ELBO in expectation).
    pub nll: f64,
    /// Importance samples per image.
    pub k: usize,
    /// Images evaluated.
    pub images: usize,
    /// The bound's name, e.g. `IWAE bound, k = 1000`.
    pub bound: String,
}

/// The importance-sampled negative log-likelihood of a VAE with a Bernoulli
/// decoder (sigmoid output) on binary data: for each image, `k` latent
/// samples from the encoder's Gaussian, weighted by `p(x|z)·p(z)/q(z|x)`
/// (Burda et al., 2016). `limit` caps the images; `progress` is called with
/// the images done so far.
pub fn importance_nll(
    model: &Model,
    part: &Part,
    k: usize,
    limit: Option<usize>,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<NllEstimate> {
    use candle_core::D;
    if !model.is_variational() {
        return Err(crate::Error::config(
            "model",
            "the importance-sampled likelihood needs a variational model",
        ));
    }
    let data = &part.input;
    let n = limit.unwrap_or(usize::MAX).min(data.len());
    if let Some(v) = data.data()[..n * data.per_sample()]
        .iter()
        .find(|&&v| v != 0.0 && v != 1.0)
    {
        return Err(crate::Error::config(
            "data",
            format!(
                "the Bernoulli likelihood needs binary data (set data.binarize = true), found the value {v}"
            ),
        ));
    }
    let k = k.max(1);
    let device = model.device();
    let mut rng = ae_data::rng(seed);
    let log2pi = (2.0 * std::f64::consts::PI).ln();
    let images_per_batch = 100usize;
    let mut total = 0.0f64;
    let idx_all: Vec<usize> = (0..n).collect();
    for idx in idx_all.chunks(images_per_batch) {
        let b = idx.len();
        let x = data.tensor(idx, device)?;
        let Latent::Gaussian { mu, logvar, .. } = model.encode(&x, Mode::Eval)? else {
            unreachable!("checked variational");
        };
        let d = mu.dim(1)?;
        let sigma = logvar.affine(0.5, 0.0)?.exp()?;
        let sum_logvar = logvar.sum(1)?; // b
        let xf = x.flatten_from(1)?; // b × p
        let mut logw: Vec<Vec<f64>> = vec![Vec::with_capacity(k); b];
        let per_chunk = (2000 / b).max(1);
        let mut done = 0;
        while done < k {
            let s = per_chunk.min(k - done);
            let eps = ae_core::randn(&mut rng, &[s, b, d], device)?;
            let z = mu
                .unsqueeze(0)?
                .broadcast_add(&sigma.unsqueeze(0)?.broadcast_mul(&eps)?)?;
            let recon = model.decode_given(&z.reshape((s * b, d))?, &x, false)?;
            let p = recon
                .flatten_from(1)?
                .reshape((s, b, ()))?
                .clamp(1e-7, 1.0 - 1e-7)?;
            let xb = xf.unsqueeze(0)?.broadcast_as(p.shape())?;
            let log_px =
                ((&xb * p.log()?)? + (xb.affine(-1.0, 1.0)? * p.affine(-1.0, 1.0)?.log()?)?)?;
            let log_px = log_px.sum(D::Minus1)?; // s × b
            let log_pz = z
                .sqr()?
                .sum(D::Minus1)?
                .affine(-0.5, -0.5 * d as f64 * log2pi)?;
            let log_qz = (eps
                .sqr()?
                .sum(D::Minus1)?
                .affine(-0.5, -0.5 * d as f64 * log2pi)?
                .broadcast_sub(&sum_logvar.affine(0.5, 0.0)?.unsqueeze(0)?))?;
            let lw = ((log_px + log_pz)? - log_qz)?.to_dtype(candle_core::DType::F64)?;
            let lw = lw.to_vec2::<f64>()?;
            for row in lw {
                for (j, v) in row.into_iter().enumerate() {
                    logw[j].push(v);
                }
            }
            done += s;
        }
        for w in &logw {
            let m = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + w.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += -(lse - (k as f64).ln());
        }
        progress(idx[b - 1] + 1);
    }
    Ok(NllEstimate {
        nll: total / n.max(1) as f64,
        k,
        images: n,
        bound: format!("IWAE bound, k = {k}"),
    })
}
