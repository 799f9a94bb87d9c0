//! Building blocks: linear and (transposed) convolution layers, activations,
//! optional batch norm. Parameters come from a prefixed `VarBuilder`, so tensor
//! names are hierarchical and stable (`encoder.0.conv.weight`).

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Init, ModuleT, VarBuilder};

use crate::config::{Activation, OutputActivation};
use crate::cpu::{self, Layer};
use crate::kernels::{self, Fused};

fn uniform(fan_in: usize) -> Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// A fully connected layer, initialised as PyTorch does (U(±1/√fan_in)).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Parameters `weight` (`out × in`) and `bias` (`out`) under `vb`.
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let init = uniform(in_dim);
        Ok(Linear {
            weight: vb.get_with_hints((out_dim, in_dim), "weight", init)?,
            bias: vb.get_with_hints(out_dim, "bias", init)?,
        })
    }

    /// The number of outputs.
    pub fn out_dim(&self) -> Result<usize> {
        self.weight.dim(0)
    }

    /// # Shapes
    /// `x`: `N × in`, or `N × …` with `in` values per sample (flattened);
    /// returns `N × out`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let out = self.weight.dim(0)?;
        kernels::linear(x, &self.weight, &self.bias, Fused::None, &[n, out])
    }

    /// The layer followed by `act`, its output shaped `out_dims` (on the CPU
    /// one fused op for ReLU and the sigmoid).
    ///
    /// # Shapes
    /// `x`: as [`Linear::forward`]; `out_dims`: `N` then axes holding `out`
    /// values in all; returns `out_dims`.
    pub fn forward_shaped(&self, x: &Tensor, act: Act, out_dims: &[usize]) -> Result<Tensor> {
        act.around(|f| kernels::linear(x, &self.weight, &self.bias, f, out_dims))
    }

    /// This layer followed by `act` as a layer of a fused stack, when the
    /// kernel applies `act` itself.
    pub(crate) fn stack_layer(&self, act: Act) -> Option<Layer> {
        let (act, None) = act.split() else {
            return None;
        };
        let (out, inp) = self.weight.dims2().ok()?;
        Some(Layer::Linear {
            inp,
            out,
            act,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        })
    }
}

/// A 1-D or 2-D convolution (the rank is that of the input).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// A convolution with `spatial_rank` (1 or 2) kernel axes of size `k`.
    pub fn new(
        spatial_rank: usize,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut shape = vec![cout, cin];
        shape.extend(std::iter::repeat_n(k, spatial_rank));
        let init = uniform(cin * k.pow(spatial_rank as u32));
        Ok(Conv {
            weight: vb.get_with_hints(shape, "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
            stride,
            padding,
        })
    }

    /// # Shapes
    /// `x`: `N × Cin × L` or `N × Cin × H × W`; returns `N × Cout × …` with
    /// each side `(n + 2·padding − k) / stride + 1`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::conv(x, &self.weight, &self.bias, self.stride, self.padding)
    }

    /// The convolution followed by `act` (ReLU is fused into the kernel on
    /// the CPU).
    ///
    /// # Shapes
    /// As [`Conv::forward`].
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        self.forward_fused(x, Act::Hidden(act))
    }

    /// The convolution followed by `act` (ReLU and the sigmoid are fused
    /// into the kernel on the CPU).
    ///
    /// # Shapes
    /// As [`Conv::forward`].
    pub fn forward_fused(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        act.around(|f| kernels::conv_act(x, &self.weight, &self.bias, self.stride, self.padding, f))
    }

    /// This convolution of an input of `x_dims` (`N × Cin × …`), followed by
    /// `act`, as a layer of a fused stack, when the kernel applies `act`
    /// itself.
    pub(crate) fn stack_layer(&self, x_dims: &[usize], act: Act) -> Option<Layer> {
        let (act, None) = act.split() else {
            return None;
        };
        let op = cpu::conv_op(x_dims, self.weight.dims(), self.stride, self.padding, act).ok()?;
        Some(Layer::Conv {
            op,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        })
    }
}

/// A 2-D convolution (stride 1, "same" padding) whose kernel is multiplied by
/// a fixed 0/1 mask, as in PixelCNN: output `(y, x)` sees only the inputs at
/// positions before `(y, x)` in raster order, and with `include_center` also
/// those at `(y, x)` itself (mask "B"; without it, mask "A").
#[derive(Debug, Clone)]
pub struct MaskedConv {
    conv: Conv,
    mask: Tensor,
}

impl MaskedConv {
    /// A `k × k` masked convolution (`k` odd) with parameters under `vb`.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        include_center: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let device = vb.device().clone();
        let conv = Conv::new(2, cin, cout, k, 1, k / 2, vb)?;
        let c = k / 2;
        let mask: Vec<f32> = (0..k * k)
            .map(|i| {
                let (y, x) = (i / k, i % k);
                f32::from(u8::from(
                    y < c || (y == c && (x < c || (include_center && x == c))),
                ))
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, k, k), &device)?.to_dtype(conv.weight.dtype())?;
        Ok(MaskedConv { conv, mask })
    }

    /// The kernel size.
    pub fn kernel(&self) -> usize {
        self.mask.dims()[2]
    }

    /// The masked convolution followed by `act`.
    ///
    /// # Shapes
    /// `x`: `N × Cin × H × W`; returns `N × Cout × H × W`.
    pub fn forward_fused(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        let weight = self.conv.weight.broadcast_mul(&self.mask)?;
        let pad = self.conv.padding;
        act.around(|f| kernels::conv_act(x, &weight, &self.conv.bias, 1, pad, f))
    }
}

/// A 1-D or 2-D transposed convolution.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvTranspose {
    /// A transposed convolution with `spatial_rank` kernel axes of size `k`.
    pub fn new(
        spatial_rank: usize,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut shape = vec![cin, cout];
        shape.extend(std::iter::repeat_n(k, spatial_rank));
        // PyTorch computes the fan-in of a transposed conv from weight dim 1.
        let init = uniform(cout * k.pow(spatial_rank as u32));
        Ok(ConvTranspose {
            weight: vb.get_with_hints(shape, "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
            stride,
            padding,
        })
    }

    /// # Shapes
    /// `x`: `N × Cin × …`; returns `N × Cout × …` with each side
    /// `(n − 1)·stride − 2·padding + k + output_padding`.
    pub fn forward(&self, x: &Tensor, output_padding: usize) -> Result<Tensor> {
        kernels::conv_transpose(
            x,
            &self.weight,
            &self.bias,
            self.stride,
            self.padding,
            output_padding,
        )
    }

    /// The transposed convolution followed by `act` (ReLU is fused into the
    /// kernel on the CPU).
    ///
    /// # Shapes
    /// As [`ConvTranspose::forward`].
    pub fn forward_act(
        &self,
        x: &Tensor,
        output_padding: usize,
        act: Activation,
    ) -> Result<Tensor> {
        self.forward_fused(x, output_padding, Act::Hidden(act))
    }

    /// The transposed convolution followed by `act` (ReLU and the sigmoid
    /// are fused into the kernel on the CPU).
    ///
    /// # Shapes
    /// As [`ConvTranspose::forward`].
    pub fn forward_fused(&self, x: &Tensor, output_padding: usize, act: Act) -> Result<Tensor> {
        act.around(|f| {
            kernels::conv_transpose_act(
                x,
                &self.weight,
                &self.bias,
                self.stride,
                self.padding,
                output_padding,
                f,
            )
        })
    }

    /// This transposed convolution of an input of `x_dims` (`N × Cin × …`),
    /// followed by `act`, as a layer of a fused stack, when the kernel
    /// applies `act` itself.
    pub(crate) fn stack_layer(
        &self,
        x_dims: &[usize],
        output_padding: usize,
        act: Act,
    ) -> Option<Layer> {
        let (act, None) = act.split() else {
            return None;
        };
        let op = cpu::conv_transpose_op(
            x_dims,
            self.weight.dims(),
            self.stride,
            self.padding,
            output_padding,
            act,
        )
        .ok()?;
        Some(Layer::Conv {
            op,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        })
    }
}

/// The activation that follows a layer: a hidden one or an output one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// A hidden activation.
    Hidden(Activation),
    /// An output activation.
    Output(OutputActivation),
}

impl Act {
    /// The part a kernel applies itself, and what is left to apply after it.
    pub(crate) fn split(self) -> (Fused, Option<Act>) {
        match self {
            Act::Hidden(Activation::Relu) => (Fused::Relu, None),
            Act::Output(OutputActivation::Sigmoid) => (Fused::Sigmoid, None),
            Act::Output(OutputActivation::None) => (Fused::None, None),
            other => (Fused::None, Some(other)),
        }
    }

    /// Runs `kernel` with the part of the activation it can fuse, then
    /// applies the rest.
    fn around(self, kernel: impl FnOnce(Fused) -> Result<Tensor>) -> Result<Tensor> {
        let (fused, rest) = self.split();
        let y = kernel(fused)?;
        match rest {
            Some(a) => a.apply(&y),
            None => Ok(y),
        }
    }

    /// Applies the activation with candle's ops.
    ///
    /// # Shapes
    /// Any; returns the same shape.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Hidden(a) => activate(x, a),
            Act::Output(a) => activate_output(x, a),
        }
    }
}

/// The mean squared error `mean((prediction − target)²)` over all values,
/// differentiable in both: one fused op on the CPU (f32), candle's ops
/// elsewhere.
///
/// # Shapes
/// `prediction` and `target` of one shape (any); returns a scalar.
pub fn mse(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    kernels::mse(prediction, target)
}

/// Applies a hidden activation.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Relu => x.relu(),
        Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, 0.01),
        Activation::Gelu => x.gelu(),
        Activation::Silu => x.silu(),
        Activation::Tanh => x.tanh(),
        Activation::Elu => x.elu(1.0),
    }
}

/// Applies an output activation.
pub fn activate_output(x: &Tensor, act: OutputActivation) -> Result<Tensor> {
    match act {
        OutputActivation::Sigmoid => candle_nn::ops::sigmoid(x),
        OutputActivation::Tanh => x.tanh(),
        OutputActivation::None => Ok(x.clone()),
    }
}

/// Optional batch norm followed by an activation: the tail of every hidden block.
#[derive(Debug, Clone)]
pub struct NormAct {
    norm: Option<BatchNorm>,
    act: Activation,
}

impl NormAct {
    /// With `batch_norm`, parameters `bn.{weight,bias,running_mean,running_var}`
    /// of size `channels` under `vb`.
    pub fn new(channels: usize, batch_norm: bool, act: Activation, vb: VarBuilder) -> Result<Self> {
        let norm = if batch_norm {
            Some(candle_nn::batch_norm(channels, 1e-5, vb.pp("bn"))?)
        } else {
            None
        };
        Ok(NormAct { norm, act })
    }

    /// The activation alone, when there is no batch norm: a convolution may
    /// then apply it itself (fused).
    pub fn fusable(&self) -> Option<Activation> {
        self.norm.is_none().then_some(self.act)
    }

    /// # Shapes
    /// `x`: `N × C × …`; returns the same shape. `train` selects batch
    /// statistics (and updates the running ones) over the running statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = match &self.norm {
            Some(bn) => bn.forward_t(x, train)?,
            None => x.clone(),
        };
        activate(&x, self.act)
    }
}
