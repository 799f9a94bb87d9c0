//! Model configurations: serde types with `deny_unknown_fields`, validated by
//! `validate()` before any model is built.
//!
//! Every model is described by one of [`ConvAeConfig`], [`Conv1dAeConfig`] or
//! [`DenseAeConfig`]; [`ModelConfig`] is the tagged union that checkpoints and
//! training configs store (`kind = "conv" | "conv1d" | "dense"`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most encoder stages a convolutional model may have.
pub const MAX_DEPTH: usize = 16;
/// Most elements any one weight tensor or per-sample activation may have
/// (2^28 f32 values, 1 GiB): a guard against configs that cannot fit in memory.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `max(0.01·x, x)`.
    LeakyRelu,
    /// Gaussian error linear unit (tanh approximation).
    Gelu,
    /// `x·sigmoid(x)`.
    Silu,
    /// Hyperbolic tangent.
    Tanh,
    /// Exponential linear unit with α = 1.
    Elu,
}

/// Non-linearity applied to the decoder's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputActivation {
    /// Logistic sigmoid: outputs in (0, 1), for data scaled to [0, 1].
    #[default]
    Sigmoid,
    /// Hyperbolic tangent: outputs in (-1, 1).
    Tanh,
    /// Identity: for standardised or unbounded data.
    None,
}

/// The bottleneck of a convolutional model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConvLatent {
    /// Flatten the last feature map and project it to a vector of `dim` values
    /// (`N × dim`).
    Dense {
        /// Size of the latent code.
        dim: usize,
    },
    /// Fully convolutional: the latent is a feature map with `channels`
    /// channels at the resolution of the last encoder stage
    /// (`N × channels × h × w`).
    Spatial {
        /// Channels of the latent map.
        channels: usize,
    },
}

fn default_kernel() -> usize {
    3
}

/// A 2-D convolutional autoencoder for `C × H × W` images.
///
/// The encoder has one stage per entry of `channels`: a `kernel_size` convolution
/// with stride 2 and padding `kernel_size / 2` (optionally batch norm), then the
/// activation. Each stage maps a side `n` to `ceil(n / 2)`. The decoder mirrors it
/// with stride-2 transposed convolutions whose output padding is chosen per stage
/// so that **any** `H × W` is reconstructed exactly (where H and W differ in
/// parity at some stage, the extra row or column is cropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvAeConfig {
    /// Image channels (1 for grayscale, 3 for RGB, or any C).
    pub in_channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Output channels of each encoder stage; the decoder mirrors them.
    pub channels: Vec<usize>,
    /// Odd kernel size of every convolution.
    #[serde(default = "default_kernel")]
    pub kernel_size: usize,
    /// Hidden non-linearity.
    #[serde(default)]
    pub activation: Activation,
    /// Batch normalisation after each hidden convolution.
    #[serde(default)]
    pub batch_norm: bool,
    /// Output non-linearity.
    #[serde(default)]
    pub output_activation: OutputActivation,
    /// The bottleneck.
    pub latent: ConvLatent,
    /// Variational: a Gaussian latent with mean and log-variance heads.
    #[serde(default)]
    pub variational: bool,
    /// Makes the model a learned image codec: the spatial latent is rounded to
    /// integers and a learned factorized density per latent channel gives its
    /// rate in bits (see [`EntropyBottleneckConfig`]). Needs a spatial,
    /// non-variational latent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_bottleneck: Option<EntropyBottleneckConfig>,
    /// Makes the decoder autoregressive (PixelCNN-style): each output value
    /// is predicted from the decoder's features *and* the input values
    /// before it in raster order, through masked convolutions (see
    /// [`PixelContextConfig`]). Training and likelihoods then use the true
    /// inputs as that context (teacher forcing); decoding without an input
    /// generates one pixel at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_context: Option<PixelContextConfig>,
}

fn default_context_channels() -> usize {
    32
}

fn default_context_layers() -> usize {
    2
}

fn default_context_kernel() -> usize {
    7
}

/// The autoregressive part of a decoder: `layers` masked convolutions over
/// the input (the first, `first_kernel × first_kernel`, excludes each pixel
/// itself; the others are 3×3 and include it), added to the decoder's last
/// feature map of `channels` maps, then two 1×1 convolutions to the output.
/// The output at pixel `i` thus depends on the latent and on the input
/// pixels before `i` only: `p(x|z) = Π p(x_i | x_<i, z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelContextConfig {
    /// Feature maps of the context network (default 32).
    #[serde(default = "default_context_channels")]
    pub channels: usize,
    /// Masked convolutions over the input (default 2).
    #[serde(default = "default_context_layers")]
    pub layers: usize,
    /// Odd kernel size, at least 3, of the first masked convolution
    /// (default 7).
    #[serde(default = "default_context_kernel")]
    pub first_kernel: usize,
}

impl Default for PixelContextConfig {
    fn default() -> Self {
        PixelContextConfig {
            channels: default_context_channels(),
            layers: default_context_layers(),
            first_kernel: default_context_kernel(),
        }
    }
}

fn default_components() -> usize {
    3
}

/// Most mixture components per latent channel of an entropy bottleneck.
pub const MAX_COMPONENTS: usize = 16;

/// The learned density of a quantised latent: for each latent channel, a
/// mixture of `components` logistic distributions, integrated over the
/// quantisation bin `[v − ½, v + ½]` of each integer `v`.
///
/// Training replaces rounding by additive uniform noise for the rate and by a
/// straight-through estimator for the decoder's input, so the objective
/// `distortion + λ·rate` can be minimised by gradient descent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyBottleneckConfig {
    /// Logistic components per latent channel (1 to 16, default 3).
    #[serde(default = "default_components")]
    pub components: usize,
}

impl Default for EntropyBottleneckConfig {
    fn default() -> Self {
        EntropyBottleneckConfig {
            components: default_components(),
        }
    }
}

/// A 1-D convolutional autoencoder for signals of `C` channels × length `L`.
///
/// Same structure and rules as [`ConvAeConfig`] with one spatial axis: any `L`
/// is reconstructed exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv1dAeConfig {
    /// Signal channels.
    pub in_channels: usize,
    /// Signal length (time steps).
    pub length: usize,
    /// Output channels of each encoder stage.
    pub channels: Vec<usize>,
    /// Odd kernel size of every convolution.
    #[serde(default = "default_kernel")]
    pub kernel_size: usize,
    /// Hidden non-linearity.
    #[serde(default)]
    pub activation: Activation,
    /// Batch normalisation after each hidden convolution.
    #[serde(default)]
    pub batch_norm: bool,
    /// Output non-linearity.
    #[serde(default)]
    pub output_activation: OutputActivation,
    /// The bottleneck.
    pub latent: ConvLatent,
    /// Variational: a Gaussian latent with mean and log-variance heads.
    #[serde(default)]
    pub variational: bool,
}

/// A fully connected (MLP) autoencoder for vectors of length `input_dim`.
///
/// Encoder: `input_dim → hidden[0] → … → hidden[k-1] → latent_dim`; the decoder
/// mirrors it. Inputs of any shape `N × …` whose per-sample size is `input_dim`
/// (such as `N × 1 × 28 × 28` for `input_dim = 784`) are flattened, and the
/// reconstruction is given back in the input's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseAeConfig {
    /// Length of an input vector.
    pub input_dim: usize,
    /// Widths of the hidden layers, outermost first (may be empty).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Size of the latent code.
    pub latent_dim: usize,
    /// Hidden non-linearity.
    #[serde(default)]
    pub activation: Activation,
    /// Batch normalisation after each hidden linear layer.
    #[serde(default)]
    pub batch_norm: bool,
    /// Output non-linearity.
    #[serde(default)]
    pub output_activation: OutputActivation,
    /// Variational: a Gaussian latent with mean and log-variance heads.
    #[serde(default)]
    pub variational: bool,
}

/// Any model `ae-core` can build, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A 2-D convolutional autoencoder.
    Conv(ConvAeConfig),
    /// A 1-D convolutional autoencoder.
    Conv1d(Conv1dAeConfig),
    /// A fully connected autoencoder.
    Dense(DenseAeConfig),
}

/// The shared description of a 1-D or 2-D convolutional model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvSpec {
    pub in_channels: usize,
    /// Spatial sizes of the input: `[L]` or `[H, W]`.
    pub spatial: Vec<usize>,
    /// Config field names of the spatial sizes, for error messages.
    pub spatial_names: &'static [&'static str],
    pub channels: Vec<usize>,
    pub kernel_size: usize,
    pub activation: Activation,
    pub batch_norm: bool,
    pub output_activation: OutputActivation,
    pub latent: ConvLatent,
    pub variational: bool,
    pub entropy: Option<EntropyBottleneckConfig>,
    pub context: Option<PixelContextConfig>,
}

fn positive(field: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::config(field, "must be at least 1, found 0"));
    }
    Ok(())
}

fn checked_product(field: &str, dims: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                Error::config(
                    field,
                    format!("{dims:?} needs more than {MAX_ELEMENTS} elements in one tensor"),
                )
            })?;
    }
    Ok(n)
}

impl ConvSpec {
    /// Spatial sizes after each encoder stage: `sizes[0]` is the input,
    /// `sizes[i + 1] = ceil(sizes[i] / 2)`.
    pub fn stage_sizes(&self) -> Vec<Vec<usize>> {
        let mut sizes = vec![self.spatial.clone()];
        for _ in &self.channels {
            let last = sizes.last().expect("sizes starts non-empty");
            sizes.push(last.iter().map(|n| n.div_ceil(2)).collect());
        }
        sizes
    }

    /// Per-sample latent shape.
    pub fn latent_dims(&self) -> Vec<usize> {
        match self.latent {
            ConvLatent::Dense { dim } => vec![dim],
            ConvLatent::Spatial { channels } => {
                let mut d = vec![channels];
                d.extend(self.stage_sizes().last().expect("non-empty"));
                d
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        positive("in_channels", self.in_channels)?;
        for (name, &n) in self.spatial_names.iter().zip(&self.spatial) {
            positive(name, n)?;
        }
        let mut input = vec![self.in_channels];
        input.extend(&self.spatial);
        checked_product("input", &input)?;
        if self.channels.is_empty() {
            return Err(Error::config(
                "channels",
                "needs at least one encoder stage, found an empty list",
            ));
        }
        if self.channels.len() > MAX_DEPTH {
            return Err(Error::config(
                "channels",
                format!(
                    "at most {MAX_DEPTH} stages are supported, found {}",
                    self.channels.len()
                ),
            ));
        }
        for (i, &c) in self.channels.iter().enumerate() {
            positive(&format!("channels[{i}]"), c)?;
        }
        if self.kernel_size.is_multiple_of(2) {
            return Err(Error::config(
                "kernel_size",
                format!(
                    "must be odd (padding is kernel_size / 2), found {}",
                    self.kernel_size
                ),
            ));
        }
        let mut prev = self.in_channels;
        for (i, &c) in self.channels.iter().enumerate() {
            let mut w = vec![c, prev];
            w.extend(std::iter::repeat_n(self.kernel_size, self.spatial.len()));
            checked_product(&format!("channels[{i}]"), &w)?;
            prev = c;
        }
        let sizes = self.stage_sizes();
        for (i, s) in sizes.iter().enumerate().skip(1) {
            let mut act = vec![self.channels[i - 1]];
            act.extend(s);
            checked_product(&format!("channels[{}]", i - 1), &act)?;
        }
        let last_c = *self.channels.last().expect("checked non-empty");
        let mut flat = vec![last_c];
        flat.extend(sizes.last().expect("non-empty"));
        let flat = checked_product("channels", &flat)?;
        match self.latent {
            ConvLatent::Dense { dim } => {
                positive("latent.dim", dim)?;
                checked_product("latent.dim", &[flat, dim])?;
            }
            ConvLatent::Spatial { channels } => {
                positive("latent.channels", channels)?;
                let mut w = vec![channels, last_c];
                w.extend(std::iter::repeat_n(self.kernel_size, self.spatial.len()));
                checked_product("latent.channels", &w)?;
            }
        }
        if let Some(e) = self.entropy {
            if !(1..=MAX_COMPONENTS).contains(&e.components) {
                return Err(Error::config(
                    "entropy_bottleneck.components",
                    format!("must be 1 to {MAX_COMPONENTS}, found {}", e.components),
                ));
            }
            if !matches!(self.latent, ConvLatent::Spatial { .. }) {
                return Err(Error::config(
                    "entropy_bottleneck",
                    "needs a spatial latent (latent = { kind = \"spatial\", channels = C }), found a dense one",
                ));
            }
            if self.variational {
                return Err(Error::config(
                    "entropy_bottleneck",
                    "cannot be combined with variational = true",
                ));
            }
            if self.batch_norm {
                return Err(Error::config(
                    "entropy_bottleneck",
                    "cannot be combined with batch_norm = true (a codec runs on one image at a time)",
                ));
            }
        }
        if let Some(c) = self.context {
            positive("pixel_context.channels", c.channels)?;
            positive("pixel_context.layers", c.layers)?;
            if c.first_kernel % 2 == 0 || c.first_kernel < 3 {
                return Err(Error::config(
                    "pixel_context.first_kernel",
                    format!(
                        "must be odd and at least 3 (a 1×1 kernel that excludes its pixel sees nothing), found {}",
                        c.first_kernel
                    ),
                ));
            }
            checked_product(
                "pixel_context.channels",
                &[
                    c.channels,
                    c.channels,
                    c.first_kernel.max(3),
                    c.first_kernel.max(3),
                ],
            )?;
            let mut maps = vec![c.channels];
            maps.extend(&self.spatial);
            checked_product("pixel_context.channels", &maps)?;
            if self.entropy.is_some() {
                return Err(Error::config(
                    "pixel_context",
                    "cannot be combined with entropy_bottleneck (a codec decodes without its input)",
                ));
            }
        }
        Ok(())
    }
}

impl ConvAeConfig {
    /// The "mnist-conv" model: 28×28×1, stages [32, 64] with 3×3 kernels,
    /// ReLU, dense latent of 32, sigmoid output.
    ///
    /// Conv(1→32, s2) ReLU Conv(32→64, s2) ReLU Linear(3136→32) |
    /// Linear(32→3136) ReLU ConvT(64→32, s2) ReLU ConvT(32→1, s2) Sigmoid.
    pub fn mnist() -> Self {
        ConvAeConfig {
            in_channels: 1,
            height: 28,
            width: 28,
            channels: vec![32, 64],
            kernel_size: 3,
            activation: Activation::Relu,
            batch_norm: false,
            output_activation: OutputActivation::Sigmoid,
            latent: ConvLatent::Dense { dim: 32 },
            variational: false,
            entropy_bottleneck: None,
            pixel_context: None,
        }
    }

    /// A learned codec for 28×28 grayscale images: stages [64, 64], a spatial
    /// latent of 16 channels at 7×7, and an entropy bottleneck with 3 logistic
    /// components per channel. Works on images of any size (padded to a
    /// multiple of 4).
    pub fn mnist_codec() -> Self {
        ConvAeConfig {
            channels: vec![64, 64],
            latent: ConvLatent::Spatial { channels: 16 },
            entropy_bottleneck: Some(EntropyBottleneckConfig::default()),
            ..Self::mnist()
        }
    }

    /// [`ConvAeConfig::mnist`] with a Gaussian latent of 32 (a convolutional VAE).
    pub fn mnist_vae() -> Self {
        ConvAeConfig {
            variational: true,
            ..Self::mnist()
        }
    }

    pub(crate) fn spec(&self) -> ConvSpec {
        ConvSpec {
            in_channels: self.in_channels,
            spatial: vec![self.height, self.width],
            spatial_names: &["height", "width"],
            channels: self.channels.clone(),
            kernel_size: self.kernel_size,
            activation: self.activation,
            batch_norm: self.batch_norm,
            output_activation: self.output_activation,
            latent: self.latent,
            variational: self.variational,
            entropy: self.entropy_bottleneck,
            context: self.pixel_context,
        }
    }

    /// Checks every setting; the error names the field and the numbers.
    pub fn validate(&self) -> Result<()> {
        self.spec().validate()
    }
}

impl Conv1dAeConfig {
    /// MNIST digits read as 1-channel signals of 784 samples (rows one after
    /// another): stages [16, 32, 64] with kernel 5, dense latent of 32.
    pub fn mnist() -> Self {
        Conv1dAeConfig {
            in_channels: 1,
            length: 784,
            channels: vec![16, 32, 64],
            kernel_size: 5,
            activation: Activation::Relu,
            batch_norm: false,
            output_activation: OutputActivation::Sigmoid,
            latent: ConvLatent::Dense { dim: 32 },
            variational: false,
        }
    }

    /// Windows of 128 steps of one univariate time series (as cut from the NAB
    /// benchmark), min–max scaled: stages [16, 32, 64], kernel 5, latent 16.
    pub fn nab() -> Self {
        Conv1dAeConfig {
            length: 128,
            latent: ConvLatent::Dense { dim: 16 },
            ..Self::mnist()
        }
    }

    /// [`Conv1dAeConfig::mnist`] with a Gaussian latent.
    pub fn mnist_vae() -> Self {
        Conv1dAeConfig {
            variational: true,
            ..Self::mnist()
        }
    }

    pub(crate) fn spec(&self) -> ConvSpec {
        ConvSpec {
            in_channels: self.in_channels,
            spatial: vec![self.length],
            spatial_names: &["length"],
            channels: self.channels.clone(),
            kernel_size: self.kernel_size,
            activation: self.activation,
            batch_norm: self.batch_norm,
            output_activation: self.output_activation,
            latent: self.latent,
            variational: self.variational,
            entropy: None,
            context: None,
        }
    }

    /// Checks every setting; the error names the field and the numbers.
    pub fn validate(&self) -> Result<()> {
        self.spec().validate()
    }
}

impl DenseAeConfig {
    /// MNIST as vectors of 784: 784 → 512 → 256 → 32, sigmoid output.
    pub fn mnist() -> Self {
        DenseAeConfig {
            input_dim: 784,
            hidden: vec![512, 256],
            latent_dim: 32,
            activation: Activation::Relu,
            batch_norm: false,
            output_activation: OutputActivation::Sigmoid,
            variational: false,
        }
    }

    /// [`DenseAeConfig::mnist`] with a Gaussian latent (an MLP VAE).
    pub fn mnist_vae() -> Self {
        DenseAeConfig {
            variational: true,
            ..Self::mnist()
        }
    }

    /// Checks every setting; the error names the field and the numbers.
    pub fn validate(&self) -> Result<()> {
        positive("input_dim", self.input_dim)?;
        positive("latent_dim", self.latent_dim)?;
        if self.hidden.len() > MAX_DEPTH {
            return Err(Error::config(
                "hidden",
                format!(
                    "at most {MAX_DEPTH} hidden layers are supported, found {}",
                    self.hidden.len()
                ),
            ));
        }
        let mut prev = self.input_dim;
        for (i, &h) in self.hidden.iter().enumerate() {
            let field = format!("hidden[{i}]");
            positive(&field, h)?;
            checked_product(&field, &[prev, h])?;
            prev = h;
        }
        checked_product("latent_dim", &[prev, self.latent_dim])?;
        Ok(())
    }
}

impl ModelConfig {
    /// Checks every setting of the wrapped config.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Conv(c) => c.validate(),
            ModelConfig::Conv1d(c) => c.validate(),
            ModelConfig::Dense(c) => c.validate(),
        }
    }

    /// The config's `kind` tag: `"conv"`, `"conv1d"` or `"dense"`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Conv(_) => "conv",
            ModelConfig::Conv1d(_) => "conv1d",
            ModelConfig::Dense(_) => "dense",
        }
    }

    /// Whether the model has a Gaussian latent.
    pub fn is_variational(&self) -> bool {
        match self {
            ModelConfig::Conv(c) => c.variational,
            ModelConfig::Conv1d(c) => c.variational,
            ModelConfig::Dense(c) => c.variational,
        }
    }

    /// Per-sample input shape: `[C, H, W]`, `[C, L]` or `[D]`.
    pub fn input_dims(&self) -> Vec<usize> {
        match self {
            ModelConfig::Conv(c) => vec![c.in_channels, c.height, c.width],
            ModelConfig::Conv1d(c) => vec![c.in_channels, c.length],
            ModelConfig::Dense(c) => vec![c.input_dim],
        }
    }

    /// Per-sample latent shape: `[dim]` or `[channels, h(, w)]`.
    pub fn latent_dims(&self) -> Vec<usize> {
        match self {
            ModelConfig::Conv(c) => c.spec().latent_dims(),
            ModelConfig::Conv1d(c) => c.spec().latent_dims(),
            ModelConfig::Dense(c) => vec![c.latent_dim],
        }
    }

    /// Looks up a named preset: `mnist-conv`, `mnist-conv-vae`, `mnist-dense`,
    /// `mnist-dense-vae`, `mnist-conv1d`, `mnist-conv1d-vae`, `nab-conv1d`, `mnist-codec`.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "mnist-conv" => ModelConfig::Conv(ConvAeConfig::mnist()),
            "mnist-conv-vae" => ModelConfig::Conv(ConvAeConfig::mnist_vae()),
            "mnist-dense" => ModelConfig::Dense(DenseAeConfig::mnist()),
            "mnist-dense-vae" => ModelConfig::Dense(DenseAeConfig::mnist_vae()),
            "mnist-conv1d" => ModelConfig::Conv1d(Conv1dAeConfig::mnist()),
            "mnist-conv1d-vae" => ModelConfig::Conv1d(Conv1dAeConfig::mnist_vae()),
            "nab-conv1d" => ModelConfig::Conv1d(Conv1dAeConfig::nab()),
            "mnist-codec" => ModelConfig::Conv(ConvAeConfig::mnist_codec()),
            other => {
                return Err(Error::config(
                    "preset",
                    format!("unknown preset `{other}`; known: {}", PRESETS.join(", ")),
                ));
            }
        })
    }
}

/// Names accepted by [`ModelConfig::preset`].
pub const PRESETS: &[&str] = &[
    "mnist-conv",
    "mnist-conv-vae",
    "mnist-dense",
    "mnist-dense-vae",
    "mnist-conv1d",
    "mnist-conv1d-vae",
    "nab-conv1d",
    "mnist-codec",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_sizes_halve_rounding_up() {
        let mut c = ConvAeConfig::mnist();
        c.height = 29;
        c.width = 7;
        c.channels = vec![4, 4, 4];
        assert_eq!(
            c.spec().stage_sizes(),
            vec![vec![29, 7], vec![15, 4], vec![8, 2], vec![4, 1]]
        );
    }

    #[test]
    fn even_kernel_is_rejected_with_the_number() {
        let mut c = ConvAeConfig::mnist();
        c.kernel_size = 4;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("kernel_size") && e.contains('4'), "{e}");
    }

    #[test]
    fn huge_layer_is_rejected() {
        let mut c = DenseAeConfig::mnist();
        c.hidden = vec![1 << 20, 1 << 20];
        assert!(c.validate().is_err());
    }
}
