//! Losses: MSE, L1 and binary cross-entropy for reconstruction, and the VAE
//! objective (reconstruction + β·KL).

use ae_core::{ForwardOutput, Latent};
use candle_core::Tensor;

use crate::config::LossKind;
use crate::error::Result;

const BCE_EPS: f64 = 1e-7;

/// Element-wise reconstruction loss, in the shape of the inputs.
pub fn elementwise(kind: LossKind, reconstruction: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        LossKind::Mse => (reconstruction - target)?.sqr()?,
        LossKind::L1 => (reconstruction - target)?.abs()?,
        LossKind::Bce => {
            let p = reconstruction.clamp(BCE_EPS, 1.0 - BCE_EPS)?;
            let one_minus_t = target.affine(-1.0, 1.0)?;
            let one_minus_p = p.affine(-1.0, 1.0)?;
            ((target * p.log()?)? + (one_minus_t * one_minus_p.log()?)?)?.neg()?
        }
    })
}

/// The mean of the element-wise loss over all values: a scalar. MSE is one
/// fused op on the CPU ([`ae_core::layers::mse`]).
pub fn mean(kind: LossKind, reconstruction: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        LossKind::Mse => ae_core::layers::mse(reconstruction, target)?,
        _ => elementwise(kind, reconstruction, target)?.mean_all()?,
    })
}

/// Reconstruction loss summed over each sample's values: shape `N`.
pub fn per_sample(kind: LossKind, reconstruction: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok(elementwise(kind, reconstruction, target)?
        .flatten_from(1)?
        .sum(1)?)
}

/// KL divergence of `N(mu, exp(logvar))` from `N(0, I)`, per sample: shape `N`.
pub fn kl_per_sample(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let t = ((logvar.affine(1.0, 1.0)? - mu.sqr()?)? - logvar.exp()?)?;
    Ok(t.flatten_from(1)?.sum(1)?.affine(-0.5, 0.0)?)
}

/// The training objective of one batch.
pub struct Objective {
    /// The scalar to differentiate.
    pub total: Tensor,
    /// Mean KL per sample (VAE only).
    pub kl: Option<Tensor>,
    /// Estimated bits per input value (codec only).
    pub bpp: Option<Tensor>,
}

/// The objective for a forward pass against `target`.
///
/// A deterministic model minimises the mean of the element-wise loss (as
/// PyTorch's `reduction="mean"`). A VAE minimises the negative ELBO per
/// sample: the reconstruction loss summed over the sample's values plus
/// `beta` times the KL term, averaged over the batch. A codec minimises the
/// mean element-wise loss plus `lambda` times the estimated bits per input
/// value.
pub fn objective(
    kind: LossKind,
    out: &ForwardOutput,
    target: &Tensor,
    beta: f64,
    lambda: f64,
) -> Result<Objective> {
    match &out.latent {
        Latent::Code(_) => Ok(Objective {
            total: mean(kind, &out.reconstruction, target)?,
            kl: None,
            bpp: None,
        }),
        Latent::Quantized { bits, .. } => {
            let per = target.elem_count() / target.dim(0)?.max(1);
            let bpp = bits.mean_all()?.affine(1.0 / per as f64, 0.0)?;
            let distortion = mean(kind, &out.reconstruction, target)?;
            Ok(Objective {
                total: (distortion + bpp.affine(lambda, 0.0)?)?,
                kl: None,
                bpp: Some(bpp),
            })
        }
        Latent::Gaussian { mu, logvar, .. } => {
            let rec = per_sample(kind, &out.reconstruction, target)?;
            let kl = kl_per_sample(mu, logvar)?;
            let total = (rec + kl.affine(beta, 0.0)?)?.mean_all()?;
            Ok(Objective {
                total,
                kl: Some(kl.mean_all()?),
                bpp: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, (1, v.len()), &Device::Cpu).unwrap()
    }

    #[test]
    fn losses_match_hand_computed_values() {
        let (r, x) = (t(&[0.2, 0.9]), t(&[0.0, 1.0]));
        let s = |k| per_sample(k, &r, &x).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((s(LossKind::Mse) - (0.04 + 0.01)).abs() < 1e-6);
        assert!((s(LossKind::L1) - 0.3).abs() < 1e-6);
        let bce = -((0.8f32).ln() + (0.9f32).ln());
        assert!((s(LossKind::Bce) - bce).abs() < 1e-5);
    }

    #[test]
    fn mean_losses_match_the_mean_of_the_elementwise_ones() {
        let (r, x) = (t(&[0.2, 0.9, 0.5]), t(&[0.0, 1.0, 0.25]));
        for kind in [LossKind::Mse, LossKind::L1, LossKind::Bce] {
            let fused = mean(kind, &r, &x).unwrap().to_scalar::<f32>().unwrap();
            let plain = elementwise(kind, &r, &x).unwrap().mean_all().unwrap();
            assert!(
                (fused - plain.to_scalar::<f32>().unwrap()).abs() < 1e-6,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn kl_is_zero_at_the_prior_and_matches_the_formula() {
        let z = t(&[0.0, 0.0]);
        assert!(kl_per_sample(&z, &z).unwrap().to_vec1::<f32>().unwrap()[0].abs() < 1e-7);
        // mu = 1, logvar = ln 2: 0.5·(2 + 1 − 1 − ln 2) = 0.6534
        let kl = kl_per_sample(&t(&[1.0]), &t(&[2f32.ln()]))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!((kl - 0.5 * (2.0 + 1.0 - 1.0 - 2f32.ln())).abs() < 1e-6);
    }
}
