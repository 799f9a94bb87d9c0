//! The bottleneck: projections from features to a latent code, or to the mean
//! and log-variance of a Gaussian with the reparameterisation trick.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::init::randn;
use crate::layers::{Conv, Linear};
use crate::traits::{Latent, Mode};

/// A projection to the latent space.
#[derive(Debug, Clone)]
pub(crate) enum Proj {
    /// Features, flattened, → vector (`N × … → N × dim`).
    Linear(Linear),
    /// Feature map → latent map, stride 1 (`N × C × … → N × c × …`).
    Conv(Conv),
}

impl Proj {
    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Proj::Linear(l) => l.forward(h)?,
            Proj::Conv(c) => c.forward(h)?,
        })
    }
}

/// `latent.proj` for a deterministic model; `latent.mu` and `latent.logvar`
/// for a variational one.
#[derive(Debug, Clone)]
pub(crate) struct LatentHead {
    pub(crate) mean: Proj,
    logvar: Option<Proj>,
}

impl LatentHead {
    /// Builds the head(s) with `make(vb)` under `latent.*`.
    pub fn new(
        variational: bool,
        vb: VarBuilder,
        make: impl Fn(VarBuilder) -> candle_core::Result<Proj>,
    ) -> Result<Self> {
        Ok(if variational {
            LatentHead {
                mean: make(vb.pp("mu"))?,
                logvar: Some(make(vb.pp("logvar"))?),
            }
        } else {
            LatentHead {
                mean: make(vb.pp("proj"))?,
                logvar: None,
            }
        })
    }

    /// # Shapes
    /// `h`: the last encoder features; returns tensors of `N × latent_dims…`.
    pub fn forward(&self, h: &Tensor, mode: Mode<'_>) -> Result<Latent> {
        let mu = self.mean.forward(h)?;
        let Some(logvar_head) = &self.logvar else {
            return Ok(Latent::Code(mu));
        };
        let logvar = logvar_head.forward(h)?;
        let z = match mode {
            Mode::Eval => mu.clone(),
            Mode::Train(rng) => {
                let eps = randn(rng, mu.dims(), mu.device())?;
                (&mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?
            }
        };
        Ok(Latent::Gaussian { z, mu, logvar })
    }
}
