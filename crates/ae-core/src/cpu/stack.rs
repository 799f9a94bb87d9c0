//! A whole training step of a feed-forward stack of the fast layers, run
//! without candle's graph.
//!
//! Through candle's autograd, each layer of a step is one op over the whole
//! batch: the threads meet after every layer, the calling thread does the
//! graph's bookkeeping while the others wait, and the backward pass
//! zero-fills a gradient for every node and adds into it. Here each thread
//! takes a fixed share of the batch and runs it, a few images at a time,
//! forward through every layer, through the loss, and backward through every
//! layer again, while that handful of images' activations are still in its
//! cache. The threads meet once, to sum their weight gradients. The kernels
//! are the same as the layer ops' ([`ConvOp::forward_chunk`],
//! [`ConvOp::backward_chunk`], one GEMM for a linear layer).
//!
//! The split of the batch over threads is fixed (by [`chunks`]), so a step
//! gives the same values on every run with the same thread count.

use std::cell::RefCell;

use candle_core::{Result, Storage, Tensor, bail};

use super::{Bufs, ConvOp, Fused, Mat, Out, chunks, gemm_block, par_map, reduce, slice, with_bufs};

/// One layer of a [`Stack`], with its parameters.
#[derive(Debug, Clone)]
pub(crate) enum Layer {
    /// A convolution or transposed convolution, its activation fused.
    Conv {
        op: ConvOp,
        weight: Tensor,
        bias: Tensor,
    },
    /// `act(x · Wᵀ + b)` over each sample's values flattened.
    Linear {
        inp: usize,
        out: usize,
        act: Fused,
        weight: Tensor,
        bias: Tensor,
    },
}

impl Layer {
    fn in_per_image(&self) -> usize {
        match self {
            Layer::Conv { op, .. } => op.in_per_image(),
            Layer::Linear { inp, .. } => *inp,
        }
    }

    fn out_per_image(&self) -> usize {
        match self {
            Layer::Conv { op, .. } => op.out_per_image(),
            Layer::Linear { out, .. } => *out,
        }
    }

    fn params(&self) -> [&Tensor; 2] {
        match self {
            Layer::Conv { weight, bias, .. } | Layer::Linear { weight, bias, .. } => [weight, bias],
        }
    }

    /// `y` (`b × out`, overwritten) from `x` (`b × in`) for `b` images.
    fn forward(&self, x: &[f32], w: &[f32], bias: &[f32], y: &mut [f32], bufs: &mut Bufs) {
        match self {
            Layer::Conv { op, .. } => {
                let (ip, opi) = (op.in_per_image(), op.out_per_image());
                let step = op.images_per_gemm(x.len() / ip.max(1));
                for (xc, yc) in x.chunks(step * ip).zip(y.chunks_mut(step * opi)) {
                    op.forward_chunk(xc, w, bias, as_out(yc), bufs, false);
                }
            }
            Layer::Linear { inp, out, act, .. } => {
                let b = x.len() / (*inp).max(1);
                let (a, wt) = (Mat { data: x, t: false }, Mat { data: w, t: true });
                gemm_block(b, 0, b, *out, 0, *out, *inp, a, wt, y, false);
                for row in y.chunks_mut(*out) {
                    act.bias_in_place(row, bias);
                }
            }
        }
    }

    /// The backward pass for `b` images: `dy` is the gradient of the
    /// activated output `y`; accumulates into `dw` and `db`, and overwrites
    /// `dx` (`b × in`) when given.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        x: &[f32],
        w: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        dw: &mut [f32],
        db: &mut [f32],
        work: &mut Vec<f32>,
        bufs: &mut Bufs,
    ) {
        let act = match self {
            Layer::Conv { op, .. } => op.act,
            Layer::Linear { act, .. } => *act,
        };
        let g = if act == Fused::None {
            dy
        } else {
            grow(work, dy.len());
            act.grad_into(dy, y, &mut work[..dy.len()]);
            &work[..dy.len()]
        };
        match self {
            Layer::Conv { op, .. } => {
                let (ip, opi) = (op.in_per_image(), op.out_per_image());
                let b = x.len() / ip.max(1);
                let step = op.images_per_gemm(b);
                let mut dx = dx;
                let mut start = 0;
                while start < b {
                    let end = (start + step).min(b);
                    let dxc = dx
                        .as_deref_mut()
                        .map(|d| as_out(&mut d[start * ip..end * ip]));
                    op.backward_chunk(
                        &x[start * ip..end * ip],
                        w,
                        &g[start * opi..end * opi],
                        dxc,
                        dw,
                        db,
                        bufs,
                        false,
                    );
                    start = end;
                }
            }
            Layer::Linear { inp, out, .. } => {
                let (inp, out) = (*inp, *out);
                let b = x.len() / inp.max(1);
                if let Some(dx) = dx {
                    // dX (b × in) = dY (b × out) · W (out × in).
                    let (a, wm) = (Mat { data: g, t: false }, Mat { data: w, t: false });
                    gemm_block(b, 0, b, inp, 0, inp, out, a, wm, dx, false);
                }
                // dW (out × in) += dYᵀ (out × b) · X (b × in).
                let (a, xm) = (Mat { data: g, t: true }, Mat { data: x, t: false });
                gemm_block(out, 0, out, inp, 0, inp, b, a, xm, dw, true);
                for row in g.chunks(out) {
                    db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                }
            }
        }
    }
}

/// An initialised buffer seen as one the kernels write without reading.
fn as_out(v: &mut [f32]) -> &mut [Out] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the kernels
    // only ever store initialised values through it.
    unsafe { &mut *(v as *mut [f32] as *mut [Out]) }
}

/// Grows `v` to at least `n` values.
fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// One thread's buffers for a step, kept between steps.
#[derive(Default)]
struct Work {
    /// Each layer's output for the images in flight.
    acts: Vec<Vec<f32>>,
    /// The gradient arriving at a layer's output, and the one it sends on.
    grads: [Vec<f32>; 2],
    /// A gradient through an activation.
    act: Vec<f32>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// Images each thread runs through the whole stack at a time: enough for
/// full GEMMs, few enough that their activations stay in its cache. Or
/// `AE_MICRO_BATCH`, read once.
fn micro_batch() -> usize {
    static MB: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MB.get_or_init(|| {
        std::env::var("AE_MICRO_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .unwrap_or(16)
    })
}

/// A feed-forward stack of layers, each taking the previous one's output.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    layers: Vec<Layer>,
}

/// The loss of one step and the gradient of every parameter, in the order
/// of [`Stack::params`].
pub(crate) struct StepGrads {
    /// The mean squared error.
    pub loss: f32,
    /// One gradient per parameter, shaped like it.
    pub grads: Vec<Tensor>,
}

impl Stack {
    /// A stack of `layers`; each layer's input size must be the previous
    /// one's output size.
    pub(crate) fn new(layers: Vec<Layer>) -> Result<Self> {
        if layers.is_empty() {
            bail!("a layer stack needs at least one layer");
        }
        for (i, pair) in layers.windows(2).enumerate() {
            let (a, b) = (pair[0].out_per_image(), pair[1].in_per_image());
            if a != b {
                bail!(
                    "layer stack: layer {i} gives {a} values per sample, layer {} takes {b}",
                    i + 1
                );
            }
        }
        Ok(Stack { layers })
    }

    /// Every parameter: each layer's weight, then its bias.
    pub(crate) fn params(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// The mean of `(stack(x) − target)²` over all values, and its gradient
    /// for every parameter (the input needs none).
    ///
    /// # Shapes
    /// `x`: `N × …` with the first layer's input size per sample; `target`:
    /// `N × …` with the last layer's output size per sample.
    pub(crate) fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<StepGrads> {
        let first = &self.layers[0];
        let last = &self.layers[self.layers.len() - 1];
        let n = x.dim(0)?;
        let (ip, op) = (first.in_per_image(), last.out_per_image());
        if x.elem_count() != n * ip || target.elem_count() != n * op {
            bail!(
                "layer stack: input {:?} and target {:?} do not hold {n} samples of {ip} and {op} values",
                x.dims(),
                target.dims()
            );
        }
        let (x, target) = (x.contiguous()?, target.contiguous()?);
        let params = self.params();
        let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
        let values = guards
            .iter()
            .map(|(s, l)| match &**s {
                Storage::Cpu(c) => slice(c, l, "parameter"),
                _ => bail!("layer stack: parameters must be on the CPU"),
            })
            .collect::<Result<Vec<&[f32]>>>()?;
        let (xs, xl) = x.storage_and_layout();
        let (ts, tl) = target.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(ts)) = (&*xs, &*ts) else {
            bail!("layer stack: the input and target must be on the CPU")
        };
        let (xv, tv) = (slice(xs, xl, "input")?, slice(ts, tl, "target")?);
        // d mean((p − t)²) / dp = 2 (p − t) / (N · op).
        let scale = 2.0 / (n * op).max(1) as f32;
        let sizes: Vec<usize> = values.iter().map(|v| v.len()).collect();
        let total: usize = sizes.iter().sum();
        let run = |r: std::ops::Range<usize>| {
            WORK.with(|cell| {
                let mut guard = cell.try_borrow_mut();
                let mut fresh = Work::default();
                let work = match guard.as_deref_mut() {
                    Ok(w) => w,
                    Err(_) => &mut fresh,
                };
                with_bufs(|bufs| {
                    let mut acc = vec![0f32; total];
                    let sq = self.run(&r, xv, tv, &values, &mut acc, scale, work, bufs);
                    (acc, sq)
                })
            })
        };
        let parts = par_map(chunks(n), run);
        let sq: f64 = parts.iter().map(|p| p.1).sum();
        let acc = reduce(parts.into_iter().map(|p| p.0).collect());
        let mut grads = Vec::with_capacity(params.len());
        let mut off = 0;
        for (p, len) in params.iter().zip(&sizes) {
            grads.push(Tensor::from_slice(
                &acc[off..off + len],
                p.shape(),
                p.device(),
            )?);
            off += len;
        }
        Ok(StepGrads {
            loss: (sq / (n * op).max(1) as f64) as f32,
            grads,
        })
    }

    /// Forward, loss and backward for the images `r`, a micro-batch at a
    /// time: adds the parameter gradients into `acc` (laid out as
    /// [`Stack::params`]) and returns the sum of squared differences.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        r: &std::ops::Range<usize>,
        x: &[f32],
        target: &[f32],
        values: &[&[f32]],
        acc: &mut [f32],
        scale: f32,
        work: &mut Work,
        bufs: &mut Bufs,
    ) -> f64 {
        let layers = &self.layers;
        let nl = layers.len();
        let ip0 = layers[0].in_per_image();
        let opn = layers[nl - 1].out_per_image();
        work.acts.resize_with(nl, Vec::new);
        // Where each layer's weight and bias gradients start in `acc`.
        let mut offs = Vec::with_capacity(nl);
        let mut off = 0;
        for l in 0..nl {
            offs.push(off);
            off += values[2 * l].len() + values[2 * l + 1].len();
        }
        let mut sq = 0f64;
        let mut start = r.start;
        while start < r.end {
            let b = micro_batch().min(r.end - start);
            let xb = &x[start * ip0..(start + b) * ip0];
            for (l, layer) in layers.iter().enumerate() {
                let (done, rest) = work.acts.split_at_mut(l);
                let input: &[f32] = if l == 0 {
                    xb
                } else {
                    &done[l - 1][..b * layer.in_per_image()]
                };
                let y = &mut rest[0];
                grow(y, b * layer.out_per_image());
                let y = &mut y[..b * layer.out_per_image()];
                layer.forward(input, values[2 * l], values[2 * l + 1], y, bufs);
            }
            // The loss, and its gradient into the last layer's output.
            let p = &work.acts[nl - 1][..b * opn];
            let t = &target[start * opn..(start + b) * opn];
            grow(&mut work.grads[0], b * opn);
            let g = &mut work.grads[0][..b * opn];
            // Squares summed in 16 interleaved partial sums (they vectorise).
            let mut part = [0f32; 16];
            for ((gc, pc), tc) in g.chunks_mut(16).zip(p.chunks(16)).zip(t.chunks(16)) {
                for (((g, p), t), s) in gc.iter_mut().zip(pc).zip(tc).zip(&mut part) {
                    let d = p - t;
                    *s += d * d;
                    *g = scale * d;
                }
            }
            sq += f64::from(part.iter().sum::<f32>());
            for (l, layer) in layers.iter().enumerate().rev() {
                let (ipl, opl) = (layer.in_per_image(), layer.out_per_image());
                let input: &[f32] = if l == 0 {
                    xb
                } else {
                    &work.acts[l - 1][..b * ipl]
                };
                let y = &work.acts[l][..b * opl];
                let [g_in, g_out] = &mut work.grads;
                let dx = if l > 0 {
                    grow(g_out, b * ipl);
                    Some(&mut g_out[..b * ipl])
                } else {
                    None
                };
                let (w, bias) = (values[2 * l], values[2 * l + 1]);
                let (dw, db) = acc[offs[l]..offs[l] + w.len() + bias.len()].split_at_mut(w.len());
                layer.backward(
                    input,
                    w,
                    y,
                    &g_in[..b * opl],
                    dx,
                    dw,
                    db,
                    &mut work.act,
                    bufs,
                );
                work.grads.swap(0, 1);
            }
            start += b;
        }
        sq
    }
}
