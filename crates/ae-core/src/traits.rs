//! The interface every architecture implements, and its typed outputs.

use candle_core::Tensor;

use crate::error::Result;
use crate::init::Rng;

/// Whether a forward pass is for training or evaluation.
///
/// Training uses batch statistics in batch norm (updating the running ones) and
/// samples variational latents with noise drawn from the given generator, so a
/// seeded [`Rng`] makes training deterministic. Evaluation uses running
/// statistics and returns the mean of a variational latent as `z`.
#[derive(Debug)]
pub enum Mode<'a> {
    /// Deterministic inference.
    Eval,
    /// Training, with the generator for the reparameterisation noise.
    Train(&'a mut Rng),
}

impl Mode<'_> {
    /// `true` for [`Mode::Train`].
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }

    /// A shorter-lived copy of this mode, to pass on to a callee.
    pub fn reborrow(&mut self) -> Mode<'_> {
        match self {
            Mode::Eval => Mode::Eval,
            Mode::Train(rng) => Mode::Train(rng),
        }
    }
}

/// What an encoder produces.
#[derive(Debug, Clone)]
pub enum Latent {
    /// A deterministic code, shaped `N × latent_dims…`.
    Code(Tensor),
    /// A diagonal Gaussian: `mu` and `logvar` from the two heads, and `z`, a
    /// sample `mu + exp(logvar / 2) · ε` when training or `mu` when evaluating.
    /// All three are shaped `N × latent_dims…`.
    Gaussian {
        /// The sample passed to the decoder.
        z: Tensor,
        /// Mean of the posterior.
        mu: Tensor,
        /// Log-variance of the posterior.
        logvar: Tensor,
    },
    /// The quantised latent of a codec (a model with an entropy bottleneck).
    Quantized {
        /// What the decoder takes: `round(y)` when evaluating; when training,
        /// `y` moved to `round(y)` with the gradient passed straight through.
        z: Tensor,
        /// The encoder's continuous output.
        y: Tensor,
        /// Estimated bits of each sample's latent under the learned density
        /// (of `round(y)` when evaluating, of `y` plus uniform noise when
        /// training), shape `N`.
        bits: Tensor,
    },
}

impl Latent {
    /// The tensor the decoder takes: the code, or the sample `z`.
    pub fn z(&self) -> &Tensor {
        match self {
            Latent::Code(c) => c,
            Latent::Gaussian { z, .. } => z,
            Latent::Quantized { z, .. } => z,
        }
    }

    /// A deterministic summary: the code, the mean `mu` (what `ae encode`
    /// reports for a VAE), or a codec's quantised latent.
    pub fn mean(&self) -> &Tensor {
        match self {
            Latent::Code(c) => c,
            Latent::Gaussian { mu, .. } => mu,
            Latent::Quantized { z, .. } => z,
        }
    }

    /// `true` for [`Latent::Gaussian`].
    pub fn is_gaussian(&self) -> bool {
        matches!(self, Latent::Gaussian { .. })
    }

    /// The same latent with every tensor detached from the graph.
    pub fn detach(&self) -> Latent {
        match self {
            Latent::Code(c) => Latent::Code(c.detach()),
            Latent::Gaussian { z, mu, logvar } => Latent::Gaussian {
                z: z.detach(),
                mu: mu.detach(),
                logvar: logvar.detach(),
            },
            Latent::Quantized { z, y, bits } => Latent::Quantized {
                z: z.detach(),
                y: y.detach(),
                bits: bits.detach(),
            },
        }
    }
}

/// The result of a full pass through an autoencoder.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// The decoder's output, in the shape of the input.
    pub reconstruction: Tensor,
    /// The encoder's output.
    pub latent: Latent,
}

/// Gradients by parameter, as [`Autoencoder::mse_step`] returns them: the
/// counterpart of candle's `GradStore` for a step computed without candle's
/// graph.
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    map: std::collections::HashMap<candle_core::TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of `param`, if it has one.
    pub fn get(&self, param: &Tensor) -> Option<&Tensor> {
        self.map.get(&param.id())
    }

    /// Sets the gradient of `param`, returning the one it replaces.
    pub fn insert(&mut self, param: &Tensor, grad: Tensor) -> Option<Tensor> {
        self.map.insert(param.id(), grad)
    }

    /// How many parameters have a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The objective of one training batch and its gradients, from
/// [`Autoencoder::mse_step`].
#[derive(Debug, Clone)]
pub struct TrainStep {
    /// The mean squared error over all values of the batch.
    pub loss: f32,
    /// The gradient of `loss` for every trainable parameter.
    pub grads: Gradients,
}

impl ForwardOutput {
    /// The same output with every tensor detached from the graph.
    pub fn detach(&self) -> ForwardOutput {
        ForwardOutput {
            reconstruction: self.reconstruction.detach(),
            latent: self.latent.detach(),
        }
    }
}

/// Maps inputs to latents.
pub trait Encoder {
    /// Per-sample input shape: `[C, H, W]`, `[C, L]` or `[D]`.
    fn input_dims(&self) -> &[usize];

    /// Per-sample latent shape: `[dim]`, `[channels, h, w]` or `[channels, l]`.
    fn latent_dims(&self) -> &[usize];

    /// Encodes a batch.
    ///
    /// # Shapes
    /// `x`: `N × input_dims…` (dense models also accept any `N × …` with
    /// `input_dim` values per sample); returns a [`Latent`] whose tensors are
    /// `N × latent_dims…`. A wrong shape is an [`Error::Shape`](crate::Error::Shape).
    fn encode(&self, x: &Tensor, mode: Mode<'_>) -> Result<Latent>;
}

/// Maps latents back to inputs.
pub trait Decoder {
    /// Decodes a batch of latent codes (or samples).
    ///
    /// # Shapes
    /// `z`: `N × latent_dims…`; returns `N × input_dims…`. `train` selects batch
    /// statistics in batch norm.
    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor>;

    /// Decodes `z` given the input `x` it stands for: the decoder's
    /// prediction of each input value. An autoregressive decoder (a conv
    /// model with a pixel context) predicts value `i` from `z` and the values
    /// of `x` before `i` (teacher forcing), which is what its likelihood
    /// `p(x|z)` and its training use; any other decoder ignores `x` and
    /// returns [`Decoder::decode`].
    ///
    /// # Shapes
    /// `z`: `M × latent_dims…` where `M` is a multiple of `x`'s batch `N`
    /// (row `j` of `z` goes with row `j mod N` of `x`, so several latent
    /// samples per input share one context); `x`: `N × input_dims…`;
    /// returns `M × input_dims…`.
    fn decode_given(&self, z: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        let _ = x;
        self.decode(z, train)
    }

    /// Draws one output per latent from the decoder's distribution, in
    /// evaluation mode. An autoregressive decoder generates one pixel at a
    /// time, each a Bernoulli draw with the predicted probability (its
    /// output is meant for binary data); any other decoder returns its mean,
    /// [`Decoder::decode`].
    ///
    /// # Shapes
    /// `z`: `N × latent_dims…`; returns `N × input_dims…`.
    fn generate(&self, z: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let _ = rng;
        self.decode(z, false)
    }

    /// Whether the decoder is autoregressive (see [`Decoder::decode_given`]).
    fn is_autoregressive(&self) -> bool {
        false
    }
}

/// An encoder and a decoder trained together.
pub trait Autoencoder: Encoder + Decoder {
    /// Whether [`Encoder::encode`] returns [`Latent::Gaussian`].
    fn is_variational(&self) -> bool;

    /// The evaluation-mode forward pass for inference: the values of
    /// [`Autoencoder::forward`] with [`Mode::Eval`], with nothing recorded
    /// for a backward pass (the outputs are detached). On the CPU, a model
    /// that [`Autoencoder::mse_step`] can run takes the fused path here
    /// too: each thread runs its share of the batch through the whole
    /// network a few images at a time (a batch smaller than the thread count
    /// goes through the layer ops instead, which split their GEMMs).
    ///
    /// # Shapes
    /// As [`Autoencoder::forward`].
    fn infer(&self, x: &Tensor) -> Result<ForwardOutput> {
        Ok(self.forward(x, Mode::Eval)?.detach())
    }

    /// The mean squared error `mean((r − target)²)` of the training-mode
    /// reconstruction `r` of `x`, and its gradient for every trainable
    /// parameter, computed without candle's graph by the fused CPU path:
    /// each thread runs its share of the batch forward and backward through
    /// the whole network a few images at a time. The values are those of
    /// [`Autoencoder::forward`], [`crate::layers::mse`] and candle's
    /// `backward` within f32 rounding.
    ///
    /// `Ok(None)` when the model or the tensors cannot take that path, and
    /// the caller should run those three instead: the path takes f32 on the
    /// CPU and a deterministic convolutional model (no VAE, codec, pixel
    /// context or batch norm) whose activations are ReLU with an identity
    /// or sigmoid output; `AE_FUSED_STEP=0` (or `AE_CANDLE_CONV=1`) turns it
    /// off.
    ///
    /// # Shapes
    /// `x`: `N × input_dims…`; `target`: `N` samples of the input's size
    /// (any shape).
    fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<Option<TrainStep>> {
        let _ = (x, target);
        Ok(None)
    }

    /// Encodes, then decodes `latent.z()` given `x` (see
    /// [`Decoder::decode_given`]).
    ///
    /// # Shapes
    /// `x`: `N × input_dims…`; the reconstruction has exactly `x`'s shape and
    /// the latent is `N × latent_dims…`.
    fn forward(&self, x: &Tensor, mut mode: Mode<'_>) -> Result<ForwardOutput> {
        let train = mode.is_train();
        let latent = self.encode(x, mode.reborrow())?;
        let mut reconstruction = self.decode_given(latent.z(), x, train)?;
        if reconstruction.dims() != x.dims() {
            reconstruction = reconstruction.reshape(x.dims())?;
        }
        Ok(ForwardOutput {
            reconstruction,
            latent,
        })
    }
}

/// Checks that `x` is `N × dims…` for some `N`.
pub(crate) fn check_batch(what: &'static str, x: &Tensor, dims: &[usize]) -> Result<()> {
    if x.rank() == dims.len() + 1 && &x.dims()[1..] == dims {
        return Ok(());
    }
    Err(crate::Error::Shape {
        what,
        expected: std::iter::once("N".to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect::<Vec<_>>()
            .join(" x "),
        found: x.dims().to_vec(),
    })
}
