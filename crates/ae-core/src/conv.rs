//! Convolutional autoencoders: [`ConvAutoencoder`] (images) and
//! [`Conv1dAutoencoder`] (signals), built on one shared network whose spatial
//! rank is 2 or 1.
//!
//! Tensor names (a checkpoint contract, pinned by a test):
//! `encoder.{i}.conv.{weight,bias}`, `encoder.{i}.bn.*`, `latent.proj.*` (or
//! `latent.mu.*` and `latent.logvar.*`), `decoder.input.*`,
//! `decoder.input.bn.*` (spatial latent with batch norm),
//! `decoder.{i}.conv.*`, `decoder.{i}.bn.*`. Decoder stage `i` undoes encoder
//! stage `i`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{
    Activation, Conv1dAeConfig, ConvAeConfig, ConvLatent, ConvSpec, OutputActivation,
    PixelContextConfig,
};
use crate::cpu::{Layer, Stack};
use crate::entropy::{FactorizedPrior, PriorParams, add_uniform_noise};
use crate::error::{Error, Result};
use crate::init::Rng;
use crate::kernels;
use crate::latent::{LatentHead, Proj};
use crate::layers::{Act, Conv, ConvTranspose, Linear, MaskedConv, NormAct};
use crate::traits::{
    Autoencoder, Decoder, Encoder, ForwardOutput, Latent, Mode, TrainStep, check_batch,
};

enum DecoderInput {
    /// Latent vector → flattened last feature map, then the activation.
    Linear(Linear, Activation),
    /// Latent map → last feature map, stride 1.
    Conv(Conv, NormAct),
}

/// The autoregressive end of a decoder (see [`PixelContextConfig`]).
struct PixelContext {
    /// Masked convolutions over the input: mask A, then mask B.
    layers: Vec<MaskedConv>,
    /// 1×1, context channels to context channels.
    merge: Conv,
    /// 1×1, context channels to the input's channels.
    out: Conv,
    output_activation: OutputActivation,
}

impl PixelContext {
    fn new(
        cfg: PixelContextConfig,
        in_channels: usize,
        output_activation: OutputActivation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = cfg.channels;
        let layers = (0..cfg.layers)
            .map(|i| {
                let (cin, k) = if i == 0 {
                    (in_channels, cfg.first_kernel)
                } else {
                    (c, 3)
                };
                MaskedConv::new(cin, c, k, i > 0, vb.pp(i))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(PixelContext {
            layers,
            merge: Conv::new(2, c, c, 1, 1, 0, vb.pp("merge"))?,
            out: Conv::new(2, c, in_channels, 1, 1, 0, vb.pp("out"))?,
            output_activation,
        })
    }

    /// Features of each pixel's causal neighbourhood in `x` (`N × C × H × W`
    /// → `N × channels × H × W`).
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward_fused(&h, Act::Hidden(Activation::Relu))?;
        }
        Ok(h)
    }

    /// How many rows above a pixel its context features reach: the first
    /// kernel's half, plus one per 3×3 layer.
    fn reach(&self) -> usize {
        self.layers.first().map_or(0, |l| l.kernel() / 2) + self.layers.len().saturating_sub(1)
    }

    /// The output from the decoder's features `hz` (`M × channels × H × W`)
    /// and the context features `hx` (`N × …`, `M` a multiple of `N`).
    fn head(&self, hz: &Tensor, hx: &Tensor) -> Result<Tensor> {
        let (m, n) = (hz.dim(0)?, hx.dim(0)?);
        let h = if m == n {
            (hz + hx)?
        } else {
            if n == 0 || m % n != 0 {
                return Err(Error::Shape {
                    what: "latent batch (a multiple of the input batch)",
                    expected: format!("a multiple of {n}"),
                    found: hz.dims().to_vec(),
                });
            }
            let mut dims = vec![m / n];
            dims.extend(hx.dims());
            hz.reshape(dims)?
                .broadcast_add(&hx.unsqueeze(0)?)?
                .reshape(hz.dims())?
        };
        let h = self
            .merge
            .forward_fused(&h.relu()?, Act::Hidden(Activation::Relu))?;
        Ok(self
            .out
            .forward_fused(&h, Act::Output(self.output_activation))?)
    }
}

struct DecoderStage {
    conv: ConvTranspose,
    /// `None` for the output stage, which gets the output activation.
    tail: Option<NormAct>,
}

/// The network shared by the 1-D and 2-D models.
struct ConvNet {
    spec: ConvSpec,
    input_dims: Vec<usize>,
    latent_dims: Vec<usize>,
    /// `C_last × sizes[depth]…`: the shape the decoder input is reshaped to.
    bottom_dims: Vec<usize>,
    /// Spatial sizes before and after each encoder stage.
    sizes: Vec<Vec<usize>>,
    encoder: Vec<(Conv, NormAct)>,
    head: LatentHead,
    prior: Option<FactorizedPrior>,
    decoder_input: DecoderInput,
    decoder: Vec<DecoderStage>,
    context: Option<PixelContext>,
}

impl ConvNet {
    fn new(spec: ConvSpec, vb: VarBuilder) -> Result<Self> {
        spec.validate()?;
        let rank = spec.spatial.len();
        let k = spec.kernel_size;
        let pad = k / 2;
        let sizes = spec.stage_sizes();
        let depth = spec.channels.len();
        let last_c = spec.channels[depth - 1];

        let mut encoder = Vec::with_capacity(depth);
        let mut cin = spec.in_channels;
        for (i, &c) in spec.channels.iter().enumerate() {
            let vb = vb.pp("encoder").pp(i);
            let conv = Conv::new(rank, cin, c, k, 2, pad, vb.pp("conv"))?;
            encoder.push((conv, NormAct::new(c, spec.batch_norm, spec.activation, vb)?));
            cin = c;
        }

        let mut bottom_dims = vec![last_c];
        bottom_dims.extend(&sizes[depth]);
        let flat: usize = bottom_dims.iter().product();
        let vbl = vb.pp("latent");
        let vbd = vb.pp("decoder").pp("input");
        let (head, decoder_input) = match spec.latent {
            ConvLatent::Dense { dim } => (
                LatentHead::new(spec.variational, vbl, |vb| {
                    Ok(Proj::Linear(Linear::new(flat, dim, vb)?))
                })?,
                DecoderInput::Linear(Linear::new(dim, flat, vbd)?, spec.activation),
            ),
            ConvLatent::Spatial { channels } => (
                LatentHead::new(spec.variational, vbl, |vb| {
                    Ok(Proj::Conv(Conv::new(
                        rank, last_c, channels, k, 1, pad, vb,
                    )?))
                })?,
                DecoderInput::Conv(
                    Conv::new(rank, channels, last_c, k, 1, pad, vbd.clone())?,
                    NormAct::new(last_c, spec.batch_norm, spec.activation, vbd)?,
                ),
            ),
        };

        let mut decoder = Vec::with_capacity(depth);
        for i in (0..depth).rev() {
            let vb = vb.pp("decoder").pp(i);
            let cout = if i == 0 {
                spec.context.map_or(spec.in_channels, |c| c.channels)
            } else {
                spec.channels[i - 1]
            };
            let conv = ConvTranspose::new(rank, spec.channels[i], cout, k, 2, pad, vb.pp("conv"))?;
            let tail = if i == 0 {
                None
            } else {
                Some(NormAct::new(cout, spec.batch_norm, spec.activation, vb)?)
            };
            decoder.push(DecoderStage { conv, tail });
        }
        let prior = match (spec.entropy, spec.latent) {
            (Some(e), ConvLatent::Spatial { channels }) => Some(FactorizedPrior::new(
                channels,
                e.components,
                vb.pp("prior"),
            )?),
            _ => None,
        };

        let context = spec
            .context
            .map(|c| {
                PixelContext::new(
                    c,
                    spec.in_channels,
                    spec.output_activation,
                    vb.pp("context"),
                )
            })
            .transpose()?;
        let mut input_dims = vec![spec.in_channels];
        input_dims.extend(&spec.spatial);
        Ok(ConvNet {
            context,
            latent_dims: spec.latent_dims(),
            spec,
            input_dims,
            bottom_dims,
            sizes,
            encoder,
            head,
            prior,
            decoder_input,
            decoder,
        })
    }

    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for (conv, tail) in &self.encoder {
            h = match tail.fusable() {
                Some(act) => conv.forward_act(&h, act)?,
                None => tail.forward(&conv.forward(&h)?, train)?,
            };
        }
        Ok(h)
    }

    fn encode(&self, x: &Tensor, mut mode: Mode<'_>) -> Result<Latent> {
        check_batch("input", x, &self.input_dims)?;
        let h = self.features(x, mode.is_train())?;
        let latent = self.head.forward(&h, mode.reborrow())?;
        let Some(prior) = &self.prior else {
            return Ok(latent);
        };
        let y = latent.z().clone();
        let rounded = y.detach().round()?;
        Ok(match mode {
            Mode::Eval => Latent::Quantized {
                bits: prior.bits(&rounded)?,
                z: rounded,
                y,
            },
            Mode::Train(rng) => {
                let noisy = add_uniform_noise(rng, &y)?;
                let z = (&y + (rounded - y.detach())?)?;
                Latent::Quantized {
                    bits: prior.bits(&noisy)?,
                    z,
                    y,
                }
            }
        })
    }

    /// The network as one fused stack of layers ([`crate::cpu::Stack`]),
    /// when every layer has a fast kernel that applies its activation
    /// itself: no VAE, codec, pixel context or batch norm, ReLU and an
    /// identity or sigmoid output, and no cropping in the decoder.
    fn stack(&self) -> Option<Stack> {
        if self.spec.variational || self.prior.is_some() || self.context.is_some() {
            return None;
        }
        let mut layers = Vec::new();
        let mut dims = vec![1];
        dims.extend(&self.input_dims);
        let mut push = |layer: Layer, dims: &mut Vec<usize>| {
            if let Layer::Conv { op, .. } = &layer {
                *dims = op.out_dims(1);
            }
            layers.push(layer);
        };
        for (conv, tail) in &self.encoder {
            let act = Act::Hidden(tail.fusable()?);
            push(conv.stack_layer(&dims, act)?, &mut dims);
        }
        match &self.head.mean {
            Proj::Linear(l) => push(
                l.stack_layer(Act::Output(OutputActivation::None))?,
                &mut dims,
            ),
            Proj::Conv(c) => push(
                c.stack_layer(&dims, Act::Output(OutputActivation::None))?,
                &mut dims,
            ),
        }
        match &self.decoder_input {
            DecoderInput::Linear(lin, act) => {
                push(lin.stack_layer(Act::Hidden(*act))?, &mut dims);
                dims = vec![1];
                dims.extend(&self.bottom_dims);
            }
            DecoderInput::Conv(conv, tail) => {
                let act = Act::Hidden(tail.fusable()?);
                push(conv.stack_layer(&dims, act)?, &mut dims);
            }
        }
        let depth = self.decoder.len();
        for (j, stage) in self.decoder.iter().enumerate() {
            let out_size = &self.sizes[depth - 1 - j];
            let output_padding = usize::from(out_size.iter().any(|n| n % 2 == 0));
            let act = match &stage.tail {
                Some(tail) => Act::Hidden(tail.fusable()?),
                None => Act::Output(self.spec.output_activation),
            };
            push(
                stage.conv.stack_layer(&dims, output_padding, act)?,
                &mut dims,
            );
            if dims[2..] != out_size[..] {
                return None;
            }
        }
        Stack::new(layers).ok()
    }

    /// The fused evaluation-mode forward pass, when the model and batch
    /// take it (see [`Autoencoder::infer`]).
    fn infer(&self, x: &Tensor) -> Result<Option<ForwardOutput>> {
        let n = x.dim(0)?;
        if !kernels::fused_step(x, x) || n < kernels::threads() {
            return Ok(None);
        }
        check_batch("input", x, &self.input_dims)?;
        let Some(stack) = self.stack() else {
            return Ok(None);
        };
        // The latent is the output of the layer after the encoder's.
        let (z, r) = stack.infer(x, self.encoder.len())?;
        let mut zdims = vec![n];
        zdims.extend(&self.latent_dims);
        Ok(Some(ForwardOutput {
            reconstruction: Tensor::from_vec(r, x.dims(), x.device())?,
            latent: Latent::Code(Tensor::from_vec(z, zdims, x.device())?),
        }))
    }

    fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<Option<TrainStep>> {
        if !kernels::fused_step(x, target) {
            return Ok(None);
        }
        check_batch("input", x, &self.input_dims)?;
        if target.elem_count() != x.elem_count() {
            return Err(Error::Shape {
                what: "target",
                expected: format!("{} values, as the input {:?}", x.elem_count(), x.dims()),
                found: target.dims().to_vec(),
            });
        }
        let Some(stack) = self.stack() else {
            return Ok(None);
        };
        Ok(Some(kernels::mse_step(&stack, x, target)?))
    }

    /// Spatial sizes through the stages for an input of `spatial`.
    fn sizes_for(&self, spatial: &[usize]) -> Vec<Vec<usize>> {
        let mut sizes = vec![spatial.to_vec()];
        for _ in &self.encoder {
            let last = sizes.last().expect("sizes starts non-empty");
            sizes.push(last.iter().map(|n| n.div_ceil(2)).collect());
        }
        sizes
    }

    fn analysis(&self, x: &Tensor) -> Result<Tensor> {
        if !matches!(self.spec.latent, ConvLatent::Spatial { .. }) {
            return Err(Error::config(
                "latent",
                "only a model with a spatial latent runs on inputs of any size",
            ));
        }
        let rank = self.spec.spatial.len();
        if x.rank() != rank + 2 || x.dim(1)? != self.spec.in_channels {
            return Err(Error::Shape {
                what: "input",
                expected: format!("N x {} x (any size, rank {rank})", self.spec.in_channels),
                found: x.dims().to_vec(),
            });
        }
        let h = self.features(x, false)?;
        Ok(self.head.forward(&h, Mode::Eval)?.z().clone())
    }

    fn synthesis(&self, z: &Tensor, spatial: &[usize]) -> Result<Tensor> {
        let ConvLatent::Spatial { channels } = self.spec.latent else {
            return Err(Error::config(
                "latent",
                "only a model with a spatial latent runs on inputs of any size",
            ));
        };
        let sizes = self.sizes_for(spatial);
        let mut want = vec![channels];
        want.extend(sizes.last().expect("non-empty"));
        check_batch("latent", z, &want)?;
        self.decode_sized(z, false, &sizes)
    }

    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        check_batch("latent", z, &self.latent_dims)?;
        if self.context.is_some() {
            return self.autoregress(z, None);
        }
        self.decode_sized(z, train, &self.sizes)
    }

    fn decode_given(&self, z: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        let Some(context) = &self.context else {
            return self.decode(z, train);
        };
        check_batch("latent", z, &self.latent_dims)?;
        check_batch("input", x, &self.input_dims)?;
        let hz = self.decode_sized(z, train, &self.sizes)?;
        context.head(&hz, &context.features(x)?)
    }

    fn generate(&self, z: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        check_batch("latent", z, &self.latent_dims)?;
        if self.context.is_some() {
            return self.autoregress(z, Some(rng));
        }
        self.decode_sized(z, false, &self.sizes)
    }

    /// Generates with the pixel context, one pixel (all channels) at a time
    /// in raster order: each is predicted from the latent and the pixels
    /// already generated. With `rng`, each value is drawn from a Bernoulli
    /// distribution with the predicted probability and the draws are
    /// returned; without, the prediction itself is fed back and returned
    /// (a deterministic decoding).
    fn autoregress(&self, z: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        use rand::Rng as _;
        let context = self.context.as_ref().expect("called with a context");
        let hz = self.decode_sized(z, false, &self.sizes)?;
        let (n, c) = (z.dim(0)?, self.spec.in_channels);
        let (h, w) = (self.spec.spatial[0], self.spec.spatial[1]);
        let mut x = vec![0f32; n * c * h * w];
        // Row y's context features depend on rows y − reach ..= y only, so
        // each step runs on that strip of rows, not on the whole image.
        let reach = context.reach();
        for y in 0..h {
            let top = y.saturating_sub(reach);
            let rows = y + 1 - top;
            let hz_row = hz.narrow(2, y, 1)?;
            for col in 0..w {
                let strip: Vec<f32> = x
                    .chunks(h * w)
                    .flat_map(|plane| &plane[top * w..(y + 1) * w])
                    .copied()
                    .collect();
                let xt =
                    Tensor::from_vec(strip, (n, c, rows, w), z.device())?.to_dtype(z.dtype())?;
                let hx_row = context.features(&xt)?.narrow(2, rows - 1, 1)?;
                let p = context
                    .head(&hz_row, &hx_row)?
                    .narrow(3, col, 1)?
                    .flatten_all()?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1::<f32>()?;
                for (i, v) in p.into_iter().enumerate() {
                    let at = (i * h + y) * w + col;
                    x[at] = match rng.as_deref_mut() {
                        Some(r) => f32::from(u8::from(r.random::<f32>() < v)),
                        None => v,
                    };
                }
            }
        }
        Ok(Tensor::from_vec(x, (n, c, h, w), z.device())?.to_dtype(z.dtype())?)
    }

    /// Decodes to the stage sizes `sizes` (as [`ConvNet::sizes_for`] gives).
    fn decode_sized(&self, z: &Tensor, train: bool, sizes: &[Vec<usize>]) -> Result<Tensor> {
        let n = z.dim(0)?;
        let mut h = match &self.decoder_input {
            DecoderInput::Linear(lin, act) => {
                let mut shape = vec![n];
                shape.extend(&self.bottom_dims);
                lin.forward_shaped(z, Act::Hidden(*act), &shape)?
            }
            DecoderInput::Conv(conv, tail) => tail.forward(&conv.forward(z)?, train)?,
        };
        let depth = self.decoder.len();
        for (j, stage) in self.decoder.iter().enumerate() {
            let out_size = &sizes[depth - 1 - j];
            // A side n was encoded to ceil(n/2); the transposed conv gives back
            // 2·ceil(n/2) − 1 + output_padding, so odd sides need 0 and even
            // sides 1. One padding serves all axes: where they differ, use 1
            // and crop the odd axes by one.
            let output_padding = usize::from(out_size.iter().any(|n| n % 2 == 0));
            // The activation is fused into the convolution when no batch norm
            // sits between them (cropping commutes with it); the last stage
            // takes the output activation.
            let fused = match &stage.tail {
                Some(tail) => tail.fusable().map(Act::Hidden),
                // With a pixel context, the last stage gives features
                // (the context's head applies the output activation).
                None if self.context.is_some() => Some(Act::Output(OutputActivation::None)),
                None => Some(Act::Output(self.spec.output_activation)),
            };
            h = match fused {
                Some(act) => stage.conv.forward_fused(&h, output_padding, act)?,
                None => stage.conv.forward(&h, output_padding)?,
            };
            for (axis, &want) in out_size.iter().enumerate() {
                if h.dim(axis + 2)? != want {
                    h = h.narrow(axis + 2, 0, want)?;
                }
            }
            if let (Some(tail), None) = (&stage.tail, fused) {
                h = tail.forward(&h, train)?;
            }
        }
        Ok(h)
    }
}

macro_rules! conv_model {
    ($(#[$doc:meta])* $name:ident, $config:ty) => {
        $(#[$doc])*
        pub struct $name {
            config: $config,
            net: ConvNet,
        }

        impl $name {
            /// Builds the model with parameters from `vb` (created and
            /// initialised there if `vb` is backed by a var map).
            pub fn new(config: $config, vb: VarBuilder) -> Result<Self> {
                let net = ConvNet::new(config.spec(), vb)?;
                Ok($name { config, net })
            }

            /// The configuration the model was built from.
            pub fn config(&self) -> &$config {
                &self.config
            }

            /// Encodes inputs of any spatial size (fully convolutional; needs
            /// a spatial latent): the continuous latent, before any
            /// quantisation, in evaluation mode.
            ///
            /// # Shapes
            /// `x`: `N × C × S…` for any sizes `S`; returns
            /// `N × latent_channels × ceil(S/2^d)…` for depth `d`.
            pub fn analysis(&self, x: &Tensor) -> Result<Tensor> {
                self.net.analysis(x)
            }

            /// Decodes a spatial latent to an output of spatial size
            /// `spatial` (the inverse of [`Self::analysis`]), in evaluation
            /// mode.
            ///
            /// # Shapes
            /// `z`: `N × latent_channels × ceil(S/2^d)…`; returns `N × C × S…`
            /// with `S = spatial`.
            pub fn synthesis(&self, z: &Tensor, spatial: &[usize]) -> Result<Tensor> {
                self.net.synthesis(z, spatial)
            }

            /// The learned latent densities of a codec (`None` without an
            /// entropy bottleneck).
            pub fn prior_params(&self) -> Result<Option<PriorParams>> {
                self.net.prior.as_ref().map(|p| p.params()).transpose()
            }

            /// How much one encoder side shrinks: `2^depth`.
            pub fn stride(&self) -> usize {
                1 << self.net.encoder.len()
            }
        }

        impl Encoder for $name {
            fn input_dims(&self) -> &[usize] {
                &self.net.input_dims
            }

            fn latent_dims(&self) -> &[usize] {
                &self.net.latent_dims
            }

            fn encode(&self, x: &Tensor, mode: Mode<'_>) -> Result<Latent> {
                self.net.encode(x, mode)
            }
        }

        impl Decoder for $name {
            fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
                self.net.decode(z, train)
            }

            fn decode_given(&self, z: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
                self.net.decode_given(z, x, train)
            }

            fn generate(&self, z: &Tensor, rng: &mut Rng) -> Result<Tensor> {
                self.net.generate(z, rng)
            }

            fn is_autoregressive(&self) -> bool {
                self.net.context.is_some()
            }
        }

        impl Autoencoder for $name {
            fn is_variational(&self) -> bool {
                self.config.variational
            }

            fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<Option<TrainStep>> {
                self.net.mse_step(x, target)
            }

            fn infer(&self, x: &Tensor) -> Result<ForwardOutput> {
                if let Some(out) = self.net.infer(x)? {
                    return Ok(out);
                }
                Ok(self.forward(x, Mode::Eval)?.detach())
            }
        }
    };
}

conv_model!(
    /// A 2-D convolutional autoencoder (optionally variational) for
    /// `C × H × W` images; see [`ConvAeConfig`].
    ///
    /// # Shapes
    /// Input and reconstruction `N × C × H × W`; latent `N × dim` (dense) or
    /// `N × channels × ceil(H/2^d) × ceil(W/2^d)` (spatial) for depth `d`.
    ConvAutoencoder,
    ConvAeConfig
);

conv_model!(
    /// A 1-D convolutional autoencoder (optionally variational) for signals of
    /// `C × L`; see [`Conv1dAeConfig`].
    ///
    /// # Shapes
    /// Input and reconstruction `N × C × L`; latent `N × dim` (dense) or
    /// `N × channels × ceil(L/2^d)` (spatial) for depth `d`.
    Conv1dAutoencoder,
    Conv1dAeConfig
);
