//! The fully connected autoencoder.
//!
//! Tensor names: `encoder.{i}.linear.*`, `encoder.{i}.bn.*`, `latent.proj.*`
//! (or `latent.mu.*`, `latent.logvar.*`), `decoder.{i}.linear.*`,
//! `decoder.{i}.bn.*`, `decoder.output.*`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::DenseAeConfig;
use crate::error::{Error, Result};
use crate::latent::{LatentHead, Proj};
use crate::layers::{Act, Linear, NormAct};
use crate::traits::{Autoencoder, Decoder, Encoder, Latent, Mode, check_batch};

/// An MLP autoencoder (optionally variational); see [`DenseAeConfig`].
///
/// # Shapes
/// Input `N × D` (or any `N × …` with `D` values per sample); latent
/// `N × latent_dim`; [`Autoencoder::forward`] gives the reconstruction in the
/// input's shape, [`Decoder::decode`] as `N × D`.
pub struct DenseAutoencoder {
    config: DenseAeConfig,
    input_dims: Vec<usize>,
    latent_dims: Vec<usize>,
    encoder: Vec<(Linear, NormAct)>,
    head: LatentHead,
    decoder: Vec<(Linear, NormAct)>,
    output: Linear,
}

impl DenseAutoencoder {
    /// Builds the model with parameters from `vb`.
    pub fn new(config: DenseAeConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut encoder = Vec::new();
        let mut prev = c.input_dim;
        for (i, &h) in c.hidden.iter().enumerate() {
            let vb = vb.pp("encoder").pp(i);
            encoder.push((
                Linear::new(prev, h, vb.pp("linear"))?,
                NormAct::new(h, c.batch_norm, c.activation, vb)?,
            ));
            prev = h;
        }
        let latent_dim = c.latent_dim;
        let head = LatentHead::new(c.variational, vb.pp("latent"), |vb| {
            Ok(Proj::Linear(Linear::new(prev, latent_dim, vb)?))
        })?;
        let mut decoder = Vec::new();
        let mut prev = c.latent_dim;
        for (i, &h) in c.hidden.iter().enumerate().rev() {
            let vb = vb.pp("decoder").pp(i);
            decoder.push((
                Linear::new(prev, h, vb.pp("linear"))?,
                NormAct::new(h, c.batch_norm, c.activation, vb)?,
            ));
            prev = h;
        }
        let output = Linear::new(prev, c.input_dim, vb.pp("decoder").pp("output"))?;
        Ok(DenseAutoencoder {
            input_dims: vec![c.input_dim],
            latent_dims: vec![c.latent_dim],
            config,
            encoder,
            head,
            decoder,
            output,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &DenseAeConfig {
        &self.config
    }
}

impl Encoder for DenseAutoencoder {
    fn input_dims(&self) -> &[usize] {
        &self.input_dims
    }

    fn latent_dims(&self) -> &[usize] {
        &self.latent_dims
    }

    fn encode(&self, x: &Tensor, mode: Mode<'_>) -> Result<Latent> {
        let per_sample: usize = x.dims().iter().skip(1).product();
        if x.rank() < 2 || per_sample != self.config.input_dim {
            return Err(Error::Shape {
                what: "input",
                expected: format!(
                    "N x {} (or N x ... with {0} values per sample)",
                    self.config.input_dim
                ),
                found: x.dims().to_vec(),
            });
        }
        let train = mode.is_train();
        let mut h = x.clone();
        for (lin, tail) in &self.encoder {
            h = forward_block(lin, tail, &h, train)?;
        }
        self.head.forward(&h, mode)
    }
}

impl Decoder for DenseAutoencoder {
    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        check_batch("latent", z, &self.latent_dims)?;
        let mut h = z.clone();
        for (lin, tail) in &self.decoder {
            h = forward_block(lin, tail, &h, train)?;
        }
        let out = [h.dim(0)?, self.config.input_dim];
        self.output
            .forward_shaped(&h, Act::Output(self.config.output_activation), &out)
            .map_err(Into::into)
    }
}

/// A linear layer and its tail, the activation fused when nothing sits
/// between them.
fn forward_block(lin: &Linear, tail: &NormAct, h: &Tensor, train: bool) -> Result<Tensor> {
    let out = [h.dim(0)?, lin.out_dim()?];
    Ok(match tail.fusable() {
        Some(act) => lin.forward_shaped(h, Act::Hidden(act), &out)?,
        None => tail.forward(&lin.forward(h)?, train)?,
    })
}

impl Autoencoder for DenseAutoencoder {
    fn is_variational(&self) -> bool {
        self.config.variational
    }
}
