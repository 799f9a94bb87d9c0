//! How convolutions are computed.
//!
//! Every convolution in `ae-core` goes through the two functions here. On the
//! CPU (f32) they use the fast kernels of [`crate::cpu`]; elsewhere (CUDA,
//! Metal, other dtypes) candle's own ops. Set `AE_CANDLE_CONV=1` to force
//! candle's ops on the CPU too (for comparisons).

use candle_core::{Result, Tensor};

pub(crate) use crate::cpu::Fused;

/// Whether to use the fast CPU kernels for `x`.
fn fast(x: &Tensor) -> bool {
    static CANDLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let forced =
        *CANDLE.get_or_init(|| std::env::var_os("AE_CANDLE_CONV").is_some_and(|v| v == "1"));
    !forced && crate::cpu::applies(x)
}

/// Whether a training step on `x` and `target` may run as a fused stack
/// ([`crate::cpu::Stack`]): the fast kernels apply to both, and
/// `AE_FUSED_STEP` is not `0`.
pub(crate) fn fused_step(x: &Tensor, target: &Tensor) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var_os("AE_FUSED_STEP").is_some_and(|v| v == "0"));
    !off && fast(x) && fast(target)
}

/// Threads of the CPU pool the fast kernels share.
pub(crate) fn threads() -> usize {
    crate::cpu::threads()
}

/// [`crate::cpu::Stack::mse_step`], its gradients keyed by parameter.
pub(crate) fn mse_step(
    stack: &crate::cpu::Stack,
    x: &Tensor,
    target: &Tensor,
) -> Result<crate::traits::TrainStep> {
    let step = stack.mse_step(x, target)?;
    let mut grads = crate::traits::Gradients::default();
    for (p, g) in stack.params().into_iter().zip(step.grads) {
        grads.insert(p, g);
    }
    Ok(crate::traits::TrainStep {
        loss: step.loss,
        grads,
    })
}

/// `mean((p − t)²)` over all values (see [`crate::layers::mse`]).
pub(crate) fn mse(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    if fast(p) && t.dtype() == p.dtype() && t.device().is_cpu() {
        return crate::cpu::mse(p, t);
    }
    (p - t)?.sqr()?.mean_all()
}

/// Reshapes a bias of `[C]` so that it broadcasts over `N × C × spatial…`.
fn bias_shape(bias: &Tensor, rank: usize) -> Result<Tensor> {
    let c = bias.dim(0)?;
    let mut shape = vec![1, c];
    shape.extend(std::iter::repeat_n(1, rank - 2));
    bias.reshape(shape)
}

/// Convolution with bias.
///
/// # Shapes
/// `x`: `N × Cin × L` or `N × Cin × H × W`; `weight`: `Cout × Cin × k` or
/// `Cout × Cin × kh × kw`; `bias`: `Cout`. Returns `N × Cout × L'` or
/// `N × Cout × H' × W'` with `n' = (n + 2·padding − k) / stride + 1`.
pub(crate) fn conv(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv_act(x, weight, bias, stride, padding, Fused::None)
}

/// [`conv`] followed by `act` (fused on the fast path).
pub(crate) fn conv_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
    act: Fused,
) -> Result<Tensor> {
    if fast(x) {
        return crate::cpu::conv(x, weight, bias, stride, padding, act);
    }
    act.apply_tensor(&candle_conv(x, weight, bias, stride, padding)?)
}

/// [`conv`] with candle's own ops.
pub(crate) fn candle_conv(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = match x.rank() {
        3 => x.conv1d(weight, padding, stride, 1, 1)?,
        4 => x.conv2d(weight, padding, stride, 1, 1)?,
        r => candle_core::bail!("convolution input must have rank 3 or 4, found rank {r}"),
    };
    y.broadcast_add(&bias_shape(bias, y.rank())?)
}

/// Transposed convolution with bias.
///
/// # Shapes
/// `x`: `N × Cin × L` or `N × Cin × H × W`; `weight`: `Cin × Cout × k` or
/// `Cin × Cout × kh × kw`; `bias`: `Cout`. Returns `N × Cout × …` with
/// `n' = (n − 1)·stride − 2·padding + k + output_padding`.
pub(crate) fn conv_transpose(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    conv_transpose_act(
        x,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        Fused::None,
    )
}

/// [`conv_transpose`] followed by `act` (fused on the fast path).
pub(crate) fn conv_transpose_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
    act: Fused,
) -> Result<Tensor> {
    if fast(x) {
        return crate::cpu::conv_transpose(x, weight, bias, stride, padding, output_padding, act);
    }
    act.apply_tensor(&candle_conv_transpose(
        x,
        weight,
        bias,
        stride,
        padding,
        output_padding,
    )?)
}

/// A fully connected layer followed by `act`, its output reshaped to
/// `out_dims` (one fused op on the fast path).
///
/// # Shapes
/// `x`: `N × …` with `in` values per sample; `weight`: `out × in`; `bias`:
/// `out`. Returns `out_dims`, whose first axis is `N` and whose other axes
/// hold `out` values.
pub(crate) fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    act: Fused,
    out_dims: &[usize],
) -> Result<Tensor> {
    if fast(x) {
        return crate::cpu::linear(x, weight, bias, act, out_dims);
    }
    candle_linear(x, weight, bias, act)?.reshape(out_dims)
}

/// [`linear`] with candle's own ops (without the final reshape).
pub(crate) fn candle_linear(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    act: Fused,
) -> Result<Tensor> {
    let y = x
        .flatten_from(1)?
        .matmul(&weight.t()?)?
        .broadcast_add(bias)?;
    act.apply_tensor(&y)
}

/// [`conv_transpose`] with candle's own ops.
pub(crate) fn candle_conv_transpose(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let y = match x.rank() {
        // candle has no backward pass for conv_transpose1d: run the 2-D op on a
        // height-1 image (padding applies to both axes there, so pad by cropping).
        3 => {
            let y = x
                .unsqueeze(2)?
                .conv_transpose2d(&weight.unsqueeze(2)?, 0, 0, stride, 1)?
                .squeeze(2)?;
            crop_padding(
                y,
                &x.dims()[2..],
                &weight.dims()[2..],
                stride,
                padding,
                output_padding,
            )?
        }
        // candle computes `(n − 1)·stride − 2·padding` first, which underflows
        // for tiny inputs (n = 1) even when the final size is valid.
        4 if x.dims()[2..]
            .iter()
            .any(|&n| (n - 1) * stride < 2 * padding) =>
        {
            let y = x.conv_transpose2d(weight, 0, 0, stride, 1)?;
            crop_padding(
                y,
                &x.dims()[2..],
                &weight.dims()[2..],
                stride,
                padding,
                output_padding,
            )?
        }
        4 => x.conv_transpose2d(weight, padding, output_padding, stride, 1)?,
        r => {
            candle_core::bail!("transposed convolution input must have rank 3 or 4, found rank {r}")
        }
    };
    y.broadcast_add(&bias_shape(bias, y.rank())?)
}

/// Turns the output of an unpadded transposed convolution (each side
/// `(n − 1)·stride + k`) into the padded one: drop `padding` at both ends and
/// add `output_padding` at the far end (zeros where past the full output).
fn crop_padding(
    mut y: Tensor,
    spatial: &[usize],
    kernel: &[usize],
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    for (axis, (&n, &k)) in spatial.iter().zip(kernel).enumerate() {
        let full = (n - 1) * stride + k;
        let Some(want) = (full + output_padding)
            .checked_sub(2 * padding)
            .filter(|&w| w > 0)
        else {
            candle_core::bail!(
                "transposed convolution output would be empty (side {n}, kernel {k}, padding {padding})"
            );
        };
        let start = padding.min(full);
        let available = full - start;
        y = y.narrow(axis + 2, start, want.min(available))?;
        if want > available {
            y = y.pad_with_zeros(axis + 2, 0, want - available)?;
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rand(dims: &[usize], seed: u64) -> Tensor {
        crate::init::randn(&mut crate::init::rng(seed), dims, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn cropped_transposed_convs_equal_candles_padded_ones() {
        for (n, k, stride, pad, op) in [
            (5, 3, 2, 1, 1),
            (4, 3, 2, 1, 0),
            (7, 5, 2, 2, 1),
            (3, 1, 2, 0, 1),
            (6, 3, 1, 1, 0),
        ] {
            let x = rand(&[2, 3, n], 1);
            let w = rand(&[3, 4, k], 2);
            let b = Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
            let ours = candle_conv_transpose(&x, &w, &b, stride, pad, op).unwrap();
            let theirs = x.conv_transpose1d(&w, pad, op, stride, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-5);
            // The 2-D crop path, forced by building it directly.
            let x2 = rand(&[2, 3, n, n + 1], 3);
            let w2 = rand(&[3, 4, k, k], 4);
            let full = x2.conv_transpose2d(&w2, 0, 0, stride, 1).unwrap();
            let cropped = crop_padding(full, &[n, n + 1], &[k, k], stride, pad, op).unwrap();
            let direct = x2.conv_transpose2d(&w2, pad, op, stride, 1).unwrap();
            assert_eq!(cropped.dims(), direct.dims());
            assert!(max_diff(&cropped, &direct) < 1e-5);
        }
    }
}

#[cfg(test)]
mod fast_tests {
    //! The fast CPU kernels against candle's own ops and against a direct
    //! loop oracle: forward values and the gradients of input, weight and
    //! bias, on random shapes. candle's own backward passes are wrong or panic
    //! for some shapes (a stride that does not divide the padded input, inputs
    //! of length 1), so gradients are compared with candle where it is right
    //! and with the oracle everywhere.

    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    fn rand(dims: &[usize], seed: u64) -> Tensor {
        crate::init::randn(&mut crate::init::rng(seed), dims, &Device::Cpu).unwrap()
    }

    fn v(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32], what: &str) -> std::result::Result<(), TestCaseError> {
        prop_assert_eq!(a.len(), b.len(), "{}", what);
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            prop_assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{}: {} vs {} (scale {})",
                what,
                x,
                y,
                scale
            );
        }
        Ok(())
    }

    /// A kernel under test: `(x, weight, bias) → y`.
    type KernelFn = dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;

    /// (output, d input, d weight, d bias) of `sum(k(x, w, b) · r)`.
    type Grads = (Vec<usize>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    fn run(
        k: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        seed: u64,
    ) -> Grads {
        let (xv, wv, bv) = (
            Var::from_tensor(x).unwrap(),
            Var::from_tensor(w).unwrap(),
            Var::from_tensor(b).unwrap(),
        );
        let y = k(xv.as_tensor(), wv.as_tensor(), bv.as_tensor()).unwrap();
        let r = rand(y.dims(), seed);
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let grad = |t: &Var| v(g.get(t.as_tensor()).unwrap());
        (y.dims().to_vec(), v(&y), grad(&xv), grad(&wv), grad(&bv))
    }

    /// Direct loops over a 2-D (de)convolution: the oracle. 1-D inputs are
    /// `N × C × 1 × L` with kernels of height 1, stride and padding 1 and 0
    /// along the height.
    #[allow(clippy::too_many_arguments)]
    fn oracle(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        s: (usize, usize),
        p: (usize, usize),
        op: (usize, usize),
        transposed: bool,
        seed: u64,
    ) -> Grads {
        let one_d = x.rank() == 3;
        let x4 = if one_d {
            x.unsqueeze(2).unwrap()
        } else {
            x.clone()
        };
        let w4 = if one_d {
            w.unsqueeze(2).unwrap()
        } else {
            w.clone()
        };
        let (n, ci, h, wd) = x4.dims4().unwrap();
        let (kh, kw) = (w4.dim(2).unwrap(), w4.dim(3).unwrap());
        let co = if transposed {
            w4.dim(1).unwrap()
        } else {
            w4.dim(0).unwrap()
        };
        let (oh, ow) = if transposed {
            (
                (h - 1) * s.0 + kh + op.0 - 2 * p.0,
                (wd - 1) * s.1 + kw + op.1 - 2 * p.1,
            )
        } else {
            ((h + 2 * p.0 - kh) / s.0 + 1, (wd + 2 * p.1 - kw) / s.1 + 1)
        };
        let mut ydims = vec![n, co, oh, ow];
        if one_d {
            ydims.remove(2);
        }
        let r = v(&rand(&ydims, seed));
        let (xs, ws, bs) = (v(&x4), v(&w4), v(b));
        let mut y = vec![0f32; n * co * oh * ow];
        let (mut dx, mut dw, mut db) = (vec![0f32; xs.len()], vec![0f32; ws.len()], vec![0f32; co]);
        for b_ in 0..n {
            for o in 0..co {
                for i in 0..oh * ow {
                    y[(b_ * co + o) * oh * ow + i] = bs[o];
                    db[o] += r[(b_ * co + o) * oh * ow + i];
                }
                for c in 0..ci {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let wi = if transposed {
                                ((c * co + o) * kh + ky) * kw + kx
                            } else {
                                ((o * ci + c) * kh + ky) * kw + kx
                            };
                            // Pairs (input position, output position) the kernel tap links.
                            let (outer_h, outer_w) = if transposed { (h, wd) } else { (oh, ow) };
                            for a in 0..outer_h {
                                for bb in 0..outer_w {
                                    let (iy, ix, yy, yx) = if transposed {
                                        let (yy, yx) = (
                                            (a * s.0 + ky) as isize - p.0 as isize,
                                            (bb * s.1 + kx) as isize - p.1 as isize,
                                        );
                                        (a as isize, bb as isize, yy, yx)
                                    } else {
                                        let (iy, ix) = (
                                            (a * s.0 + ky) as isize - p.0 as isize,
                                            (bb * s.1 + kx) as isize - p.1 as isize,
                                        );
                                        (iy, ix, a as isize, bb as isize)
                                    };
                                    if iy < 0
                                        || ix < 0
                                        || iy >= h as isize
                                        || ix >= wd as isize
                                        || yy < 0
                                        || yx < 0
                                        || yy >= oh as isize
                                        || yx >= ow as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((b_ * ci + c) * h + iy as usize) * wd + ix as usize;
                                    let yi = ((b_ * co + o) * oh + yy as usize) * ow + yx as usize;
                                    y[yi] += ws[wi] * xs[xi];
                                    dx[xi] += ws[wi] * r[yi];
                                    dw[wi] += xs[xi] * r[yi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (ydims, y, dx, dw, db)
    }

    fn same(
        a: &Grads,
        b: &Grads,
        what: &str,
        grads: bool,
    ) -> std::result::Result<(), TestCaseError> {
        prop_assert_eq!(&a.0, &b.0, "{} output shape", what);
        close(&a.1, &b.1, &format!("{what} forward"))?;
        if grads {
            close(&a.2, &b.2, &format!("{what} input gradient"))?;
            close(&a.3, &b.3, &format!("{what} weight gradient"))?;
            close(&a.4, &b.4, &format!("{what} bias gradient"))?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn conv2d_matches(n in 1usize..4, cin in 1usize..4, cout in 1usize..4, h in 1usize..10, w in 1usize..10,
                          k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..4, pad in 0usize..3, seed: u64) {
            let pad = pad.min(k / 2);
            prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
            let (x, wt, b) = (rand(&[n, cin, h, w], seed), rand(&[cout, cin, k, k], seed + 1), rand(&[cout], seed + 2));
            let fast = run(&|x, w, b| crate::cpu::conv(x, w, b, stride, pad, Fused::None), &x, &wt, &b, seed);
            same(&fast, &oracle(&x, &wt, &b, (stride, stride), (pad, pad), (0, 0), false, seed), "oracle", true)?;
            if (h + 2 * pad - k) % stride == 0 && (w + 2 * pad - k) % stride == 0 {
                same(&fast, &run(&|x, w, b| candle_conv(x, w, b, stride, pad), &x, &wt, &b, seed), "candle", true)?;
            } else {
                close(&fast.1, &v(&candle_conv(&x, &wt, &b, stride, pad).unwrap()), "candle forward")?;
            }
            // No input gradient when the input is plain data.
            let y = crate::cpu::conv(&x, &Var::from_tensor(&wt).unwrap(), &b, stride, pad, Fused::None).unwrap();
            prop_assert!(y.sum_all().unwrap().backward().unwrap().get(&x).is_none());
        }

        #[test]
        fn conv1d_matches(n in 1usize..4, cin in 1usize..4, cout in 1usize..4, l in 1usize..20,
                          k in prop::sample::select(vec![1usize, 3, 5, 7]), stride in 1usize..4, seed: u64) {
            let pad = k / 2;
            let (x, wt, b) = (rand(&[n, cin, l], seed), rand(&[cout, cin, k], seed + 1), rand(&[cout], seed + 2));
            let fast = run(&|x, w, b| crate::cpu::conv(x, w, b, stride, pad, Fused::None), &x, &wt, &b, seed);
            same(&fast, &oracle(&x, &wt, &b, (1, stride), (0, pad), (0, 0), false, seed), "oracle", true)?;
            // candle's conv1d input gradient is wrong for some shapes (k = 1
            // with several output channels): compare its forward only.
            close(&fast.1, &v(&candle_conv(&x, &wt, &b, stride, pad).unwrap()), "candle forward")?;
        }

        #[test]
        fn conv_transpose2d_matches(n in 1usize..4, cin in 1usize..4, cout in 1usize..4, h in 1usize..8, w in 1usize..8,
                                    k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..4, pad in 0usize..3,
                                    op in 0usize..3, seed: u64) {
            let pad = pad.min(k / 2);
            let op = op.min(stride - 1);
            prop_assume!((h - 1) * stride + k + op > 2 * pad && (w - 1) * stride + k + op > 2 * pad);
            let (x, wt, b) = (rand(&[n, cin, h, w], seed), rand(&[cin, cout, k, k], seed + 1), rand(&[cout], seed + 2));
            let fast = run(&|x, w, b| crate::cpu::conv_transpose(x, w, b, stride, pad, op, Fused::None), &x, &wt, &b, seed);
            same(&fast, &oracle(&x, &wt, &b, (stride, stride), (pad, pad), (op, op), true, seed), "oracle", true)?;
            let reference = run(&|x, w, b| candle_conv_transpose(x, w, b, stride, pad, op), &x, &wt, &b, seed);
            same(&fast, &reference, "candle", true)?;
        }

        #[test]
        fn conv_transpose1d_matches(n in 1usize..4, cin in 1usize..4, cout in 1usize..4, l in 1usize..16,
                                    k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..4, op in 0usize..3, seed: u64) {
            let pad = k / 2;
            let op = op.min(stride - 1);
            prop_assume!((l - 1) * stride + k + op > 2 * pad);
            let (x, wt, b) = (rand(&[n, cin, l], seed), rand(&[cin, cout, k], seed + 1), rand(&[cout], seed + 2));
            let fast = run(&|x, w, b| crate::cpu::conv_transpose(x, w, b, stride, pad, op, Fused::None), &x, &wt, &b, seed);
            same(&fast, &oracle(&x, &wt, &b, (1, stride), (0, pad), (0, op), true, seed), "oracle", true)?;
            let reference = run(&|x, w, b| candle_conv_transpose(x, w, b, stride, pad, op), &x, &wt, &b, seed);
            same(&fast, &reference, "candle", true)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn fused_activations_match_conv_then_activation(n in 1usize..4, c in 1usize..4, h in 1usize..9, stride in 1usize..3,
                                                        transposed: bool, sigmoid: bool, seed: u64) {
            let x = rand(&[n, c, h, h + 1], seed);
            let b = rand(&[3], seed + 2);
            let act = if sigmoid { Fused::Sigmoid } else { Fused::Relu };
            let (fused, plain): (Box<KernelFn>, Box<KernelFn>) = if transposed {
                (Box::new(move |x, w, b| crate::cpu::conv_transpose(x, w, b, stride, 1, stride - 1, act)),
                 Box::new(move |x, w, b| act.apply_tensor(&crate::cpu::conv_transpose(x, w, b, stride, 1, stride - 1, Fused::None)?)))
            } else {
                (Box::new(move |x, w, b| crate::cpu::conv(x, w, b, stride, 1, act)),
                 Box::new(move |x, w, b| act.apply_tensor(&crate::cpu::conv(x, w, b, stride, 1, Fused::None)?)))
            };
            let wt = if transposed { rand(&[c, 3, 3, 3], seed + 1) } else { rand(&[3, c, 3, 3], seed + 1) };
            same(&run(&*fused, &x, &wt, &b, seed), &run(&*plain, &x, &wt, &b, seed), "activation", true)?;
        }

        #[test]
        fn mse_matches_candle(n in 1usize..5, d in 1usize..20000, seed: u64) {
            // Up to 100,000 values: large ones split over the threads.
            let (p, t) = (rand(&[n, d], seed), rand(&[n, d], seed + 1));
            let (pv, tv) = (Var::from_tensor(&p).unwrap(), Var::from_tensor(&t).unwrap());
            let fused = crate::cpu::mse(&pv, &tv).unwrap();
            let plain = (pv.as_tensor() - tv.as_tensor()).unwrap().sqr().unwrap().mean_all().unwrap();
            let (a, b) = (fused.to_scalar::<f32>().unwrap(), plain.to_scalar::<f32>().unwrap());
            prop_assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            let (gf, gp) = (fused.backward().unwrap(), plain.backward().unwrap());
            for v in [&pv, &tv] {
                let flat = |g: &candle_core::backprop::GradStore| {
                    g.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
                };
                close(&flat(&gf), &flat(&gp), "mse gradient")?;
            }
            // No target gradient when the target is plain data.
            let g = crate::cpu::mse(&pv, &t).unwrap().backward().unwrap();
            prop_assert!(g.get(&t).is_none());
        }

        #[test]
        fn linear_matches_candle(n in 1usize..7, a in 1usize..4, w in 1usize..7, out in 1usize..9,
                                 act in 0usize..3, shaped: bool, seed: u64) {
            let act = [Fused::None, Fused::Relu, Fused::Sigmoid][act];
            let (x, wt, b) = (rand(&[n, a, w], seed), rand(&[out, a * w], seed + 1), rand(&[out], seed + 2));
            let dims = if shaped { vec![n, 1, out] } else { vec![n, out] };
            let fast = run(&|x, w, b| crate::cpu::linear(x, w, b, act, &dims), &x, &wt, &b, seed);
            let reference = run(&|x, w, b| candle_linear(x, w, b, act)?.reshape(dims.as_slice()), &x, &wt, &b, seed);
            same(&fast, &reference, "candle", true)?;
            // No input gradient when the input is plain data.
            let y = crate::cpu::linear(&x, &Var::from_tensor(&wt).unwrap(), &b, act, &dims).unwrap();
            prop_assert!(y.sum_all().unwrap().backward().unwrap().get(&x).is_none());
        }
    }

    #[test]
    fn linear_rejects_mismatched_shapes() {
        let (x, wt, b) = (rand(&[2, 5], 1), rand(&[3, 4], 2), rand(&[3], 3));
        assert!(crate::cpu::linear(&x, &wt, &b, Fused::None, &[2, 3]).is_err());
        let wt = rand(&[3, 5], 4);
        assert!(crate::cpu::linear(&x, &wt, &b, Fused::None, &[2, 4]).is_err());
        assert!(crate::cpu::linear(&x, &wt, &b, Fused::None, &[2, 3]).is_ok());
    }

    #[test]
    fn large_images_split_into_several_gemms_per_thread_agree() {
        // 45 images of 8 × 64 × 64 with 5 × 5 kernels: a column buffer holds
        // about 20 images, so each thread runs several GEMMs.
        let (x, wt, b) = (
            rand(&[45, 8, 64, 64], 7),
            rand(&[4, 8, 5, 5], 8),
            rand(&[4], 9),
        );
        let fast = run(
            &|x, w, b| crate::cpu::conv(x, w, b, 1, 2, Fused::None),
            &x,
            &wt,
            &b,
            10,
        );
        let reference = run(&|x, w, b| candle_conv(x, w, b, 1, 2), &x, &wt, &b, 10);
        same(&fast, &reference, "candle", true).unwrap();
        let wt = rand(&[8, 4, 5, 5], 11);
        let fast = run(
            &|x, w, b| crate::cpu::conv_transpose(x, w, b, 1, 2, 0, Fused::None),
            &x,
            &wt,
            &b,
            12,
        );
        let reference = run(
            &|x, w, b| candle_conv_transpose(x, w, b, 1, 2, 0),
            &x,
            &wt,
            &b,
            12,
        );
        same(&fast, &reference, "candle", true).unwrap();
    }

    #[test]
    fn big_batches_split_across_threads_agree() {
        let (x, wt, b) = (
            rand(&[37, 3, 12, 12], 1),
            rand(&[5, 3, 3, 3], 2),
            rand(&[5], 3),
        );
        let fast = run(
            &|x, w, b| crate::cpu::conv(x, w, b, 2, 1, Fused::None),
            &x,
            &wt,
            &b,
            4,
        );
        same(
            &fast,
            &oracle(&x, &wt, &b, (2, 2), (1, 1), (0, 0), false, 4),
            "oracle",
            true,
        )
        .unwrap();
        let wt = rand(&[3, 5, 3, 3], 5);
        let fast = run(
            &|x, w, b| crate::cpu::conv_transpose(x, w, b, 2, 1, 1, Fused::None),
            &x,
            &wt,
            &b,
            6,
        );
        same(
            &fast,
            &oracle(&x, &wt, &b, (2, 2), (1, 1), (1, 1), true, 6),
            "oracle",
            true,
        )
        .unwrap();
        // A linear layer big enough to split its rows over the threads,
        // with the ReLU (and its gradient) fused in; its incoming gradient
        // is large enough for the activation's gradient to be split too.
        // A batch of one through a wide layer splits its columns instead.
        let (wt, b) = (rand(&[1000, 300], 8), rand(&[1000], 9));
        let relu = Fused::Relu;
        for (n, seed) in [(37, 7), (1, 11)] {
            let x = rand(&[n, 300], seed);
            same(
                &run(
                    &|x, w, b| crate::cpu::linear(x, w, b, relu, &[n, 1000]),
                    &x,
                    &wt,
                    &b,
                    seed + 3,
                ),
                &run(
                    &|x, w, b| candle_linear(x, w, b, relu),
                    &x,
                    &wt,
                    &b,
                    seed + 3,
                ),
                "candle",
                true,
            )
            .unwrap();
        }
    }
}
