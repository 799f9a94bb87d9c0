//! A whole training step (or inference pass) of a feed-forward stack of the
//! fast layers, run without candle's graph.
//!
//! Through candle's autograd, each layer of a step is one op over the whole
//! batch: the threads meet after every layer, the calling thread does the
//! graph's bookkeeping while the others wait, and the backward pass
//! zero-fills a gradient for every node and adds into it. Here each thread
//! takes a fixed share of the batch and runs it, a micro-batch of images at
//! a time, forward through every layer, through the loss, and backward
//! through every layer again, while those images' activations are still in
//! its cache. The threads meet once, to sum their weight gradients.
//!
//! The building blocks are the layer ops' (im2col / col2im, one GEMM per
//! layer, the fused activations), arranged for this: between convolutions
//! the activations stay as channel planes (`C × b·P`, what a convolution's
//! GEMM takes and gives), im2col and col2im run over the whole micro-batch
//! in one tall plane ([`Tall`]), and a convolution's forward column matrix
//! is kept for its weight gradient.
//!
//! The split of the batch over threads is fixed (by [`chunks`]), so a step
//! gives the same values on every run with the same thread count.

use std::cell::RefCell;

use candle_core::{Result, Storage, Tensor, bail};

use super::{
    Bufs, ConvOp, Fused, Mat, Out, Tall, chunks, gather, gemm_block, matmul, par_map, reduce,
    scatter, scratch_budget, slice, sum, weight_grad, with_bufs,
};

/// How a layer's values for `b` images lie in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `b × (values per image)`: one image after another.
    Images,
    /// `C × b·P`: channel `c` of every image, one after another, then
    /// channel `c + 1`: a convolution's GEMM takes and gives this layout,
    /// so consecutive convolutions pass it on without copies.
    Planes(usize, usize),
}

impl Layout {
    /// Whether values in `self` and `other` lie the same way for `b` images
    /// (one image, or planes of one channel, lie as images do).
    fn same(self, other: Layout, b: usize) -> bool {
        let flat = |l: Layout| match l {
            Layout::Images => true,
            Layout::Planes(c, _) => c == 1 || b == 1,
        };
        self == other || (flat(self) && flat(other))
    }

    /// `dst` in layout `to` from `src` in `self`, for `b` images.
    fn convert(self, to: Layout, src: &[f32], dst: &mut [f32], b: usize) {
        match (self, to) {
            _ if self.same(to, b) => dst.copy_from_slice(src),
            (Layout::Images, Layout::Planes(c, p)) => gather(src, c, p, dst),
            (Layout::Planes(c, p), Layout::Images) => scatter(src, c, p, as_out(dst)),
            (a, b) => unreachable!("no conversion from {a:?} to {b:?} in a layer stack"),
        }
    }
}

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

    /// The layout the layer takes its input in.
    fn in_layout(&self) -> Layout {
        match self {
            Layer::Conv { op, .. } if op.transposed => Layout::Planes(op.cin, op.g.cols()),
            Layer::Conv { op, .. } => Layout::Planes(op.cin, op.g.h * op.g.w),
            Layer::Linear { .. } => Layout::Images,
        }
    }

    /// The layout the layer gives its output in.
    fn out_layout(&self) -> Layout {
        match self {
            Layer::Conv { op, .. } if op.transposed => Layout::Planes(op.cout, op.g.h * op.g.w),
            Layer::Conv { op, .. } => Layout::Planes(op.cout, op.g.cols()),
            Layer::Linear { .. } => Layout::Images,
        }
    }

    /// Images (at most `n`) whose GEMM scratch fits in `budget` values (all
    /// of them for a linear layer).
    fn images_within(&self, budget: usize, n: usize) -> usize {
        match self {
            Layer::Conv { op, .. } => op.images_within(budget, n),
            Layer::Linear { .. } => n,
        }
    }

    /// `y` (overwritten) from `x` for `b` images, each in the layer's
    /// layouts ([`Layer::in_layout`], [`Layer::out_layout`]): a convolution
    /// is one GEMM over the `b` images' columns, whose result is already
    /// `y` in planes; the bias and activation are then applied in place.
    ///
    /// A convolution's column matrix is built in `slot.keep`, where the
    /// backward pass finds it again; a linear layer finds its weight
    /// transposed there.
    fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        y: &mut [f32],
        slot: &mut Slot,
        bufs: &mut Bufs,
    ) {
        match self {
            Layer::Conv { op, .. } => {
                let g = &op.g;
                let (k, p) = (g.rows(), g.cols());
                let b = x.len() / op.in_per_image().max(1);
                let bp = b * p;
                let col = if op.transposed {
                    bufs.pair(k * bp, 0).0
                } else {
                    grow(&mut slot.keep, k * bp);
                    &mut slot.keep[..k * bp]
                };
                let patches = patches_for(&mut slot.patches, g, b);
                if op.transposed {
                    // col (K × BP) = Wmᵀ (K × Cin) · X (Cin × BP); y = col2im(col) + b.
                    let wt = Mat { data: w, t: true };
                    matmul(
                        k,
                        bp,
                        op.cin,
                        wt,
                        Mat { data: x, t: false },
                        col,
                        false,
                        false,
                    );
                    patches.col2im(col, as_out(y), Some((bias, op.act)));
                } else {
                    // Y (Cout × BP) = W (Cout × K) · [im2col(x_1) … im2col(x_b)] (K × BP).
                    patches.im2col(x, col);
                    let wm = Mat { data: w, t: false };
                    matmul(
                        op.cout,
                        bp,
                        k,
                        wm,
                        Mat {
                            data: col,
                            t: false,
                        },
                        y,
                        false,
                        false,
                    );
                    for (row, &bc) in y.chunks_mut(bp).zip(bias) {
                        op.act.bias_row_in_place(row, bc);
                    }
                }
            }
            Layer::Linear { inp, out, act, .. } => {
                // With fewer outputs than inputs, `keep` holds Wᵀ (in × out)
                // row-major ([`Stack::prepare`]): the GEMM then runs at about
                // twice the speed than with W read transposed, at the few
                // rows of a micro-batch.
                let b = x.len() / (*inp).max(1);
                let wt = if transposes(*inp, *out) {
                    Mat {
                        data: &slot.keep[..w.len()],
                        t: false,
                    }
                } else {
                    Mat { data: w, t: true }
                };
                gemm_block(
                    b,
                    0,
                    b,
                    *out,
                    0,
                    *out,
                    *inp,
                    Mat { data: x, t: false },
                    wt,
                    y,
                    false,
                );
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
        slot: &mut Slot,
        work: &mut Vec<f32>,
        bufs: &mut Bufs,
    ) {
        let act = match self {
            Layer::Conv { op, .. } => op.act,
            Layer::Linear { act, .. } => *act,
        };
        let g: &[f32] = match self {
            Layer::Conv { op, .. } => {
                // Row by row (one channel of every image, in planes): the
                // activation's gradient, then the bias gradient from the
                // row while it is in cache.
                let len = dy.len() / op.cout.max(1);
                if act == Fused::None {
                    for (d, row) in db.iter_mut().zip(dy.chunks(len)) {
                        *d += sum(row);
                    }
                    dy
                } else {
                    grow(work, dy.len());
                    let rows = work[..dy.len()].chunks_mut(len);
                    for ((d, o), (dyr, yr)) in db
                        .iter_mut()
                        .zip(rows)
                        .zip(dy.chunks(len).zip(y.chunks(len)))
                    {
                        act.grad_into(dyr, yr, o);
                        *d += sum(o);
                    }
                    &work[..dy.len()]
                }
            }
            Layer::Linear { .. } if act == Fused::None => dy,
            Layer::Linear { .. } => {
                grow(work, dy.len());
                act.grad_into(dy, y, &mut work[..dy.len()]);
                &work[..dy.len()]
            }
        };
        match self {
            Layer::Conv { op, .. } => {
                let geo = &op.g;
                let (k, p) = (geo.rows(), geo.cols());
                let b = x.len() / op.in_per_image().max(1);
                let bp = b * p;
                let (col, _) = bufs.pair(k * bp, 0);
                let patches = patches_for(&mut slot.patches, geo, b);
                if op.transposed {
                    // col = [im2col(dy_i)] (K × BP); dWm += X (Cin × BP) · colᵀ;
                    // dX (Cin × BP) = Wm (Cin × K) · col.
                    patches.im2col(g, col);
                    weight_grad(op.cin, k, bp, x, col, dw, false);
                    if let Some(dx) = dx {
                        let wm = Mat { data: w, t: false };
                        matmul(
                            op.cin,
                            bp,
                            k,
                            wm,
                            Mat {
                                data: col,
                                t: false,
                            },
                            dx,
                            false,
                            false,
                        );
                    }
                } else {
                    // dW += dY (Cout × BP) · colᵀ, with the forward pass's
                    // columns; dX = col2im(Wᵀ · dY).
                    weight_grad(op.cout, k, bp, g, &slot.keep[..k * bp], dw, false);
                    if let Some(dx) = dx {
                        let wt = Mat { data: w, t: true };
                        matmul(
                            k,
                            bp,
                            op.cout,
                            wt,
                            Mat { data: g, t: false },
                            col,
                            false,
                            false,
                        );
                        patches.col2im(col, as_out(dx), None);
                    }
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

/// The f32 values of the parameters behind `guards`.
fn param_values<'a>(
    guards: &'a [(candle_core::StorageRef<'a>, &'a candle_core::Layout)],
) -> Result<Vec<&'a [f32]>> {
    guards
        .iter()
        .map(|(s, l)| cpu_values(s, l, "parameter"))
        .collect()
}

/// Runs `f` with this thread's work buffers and kernel scratch (fresh
/// buffers when this thread's are in use further up its stack).
fn with_work<R>(f: impl FnOnce(&mut Work, &mut Bufs) -> R) -> R {
    WORK.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut fresh = Work::default();
        let work = match guard.as_deref_mut() {
            Ok(w) => w,
            Err(_) => &mut fresh,
        };
        with_bufs(|bufs| f(work, bufs))
    })
}

/// The f32 values of a CPU tensor's storage (`what` names it in errors).
fn cpu_values<'a>(s: &'a Storage, l: &candle_core::Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => slice(c, l, what),
        _ => bail!("layer stack: the {what} must be on the CPU"),
    }
}

/// `dst` (`cols × rows`) = `src` (`rows × cols`) transposed, both
/// row-major, 16 source rows at a time.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for r0 in (0..rows).step_by(B) {
        let nb = B.min(rows - r0);
        for c in 0..cols {
            // `B` source rows at once: one contiguous write of `nb` values.
            let d = &mut dst[c * rows + r0..c * rows + r0 + nb];
            for (i, v) in d.iter_mut().enumerate() {
                // SAFETY: (r0 + i) < rows and c < cols, so the index is
                // below rows · cols ≤ src.len() (asserted above).
                *v = unsafe { *src.get_unchecked((r0 + i) * cols + c) };
            }
        }
    }
}

/// Whether a linear layer's forward pass multiplies by a transposed copy
/// of its weight ([`Stack::prepare`]): when it has fewer outputs than
/// inputs. (On mnist-conv's 3136 → 32 layer the copy saves 4× its cost in
/// GEMM time; on the 32 → 3136 one it costs more than it saves.)
fn transposes(inp: usize, out: usize) -> bool {
    out < inp
}

/// Grows `v` to at least `n` values.
fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// What one thread keeps for one layer of a stack between its forward and
/// backward passes, and between steps.
#[derive(Default)]
struct Slot {
    /// A convolution's column matrix, or a linear layer's weight transposed.
    keep: Vec<f32>,
    /// A convolution's im2col / col2im tables for a micro-batch.
    patches: Option<Tall>,
}

/// The tables in `slot` for `b` images of geometry `g`, built on first use
/// (or when the thread last ran another geometry or count in this slot).
fn patches_for<'a>(slot: &'a mut Option<Tall>, g: &super::Geom, b: usize) -> &'a mut Tall {
    if slot.as_ref().is_some_and(|p| !p.fits(g, b)) {
        *slot = None;
    }
    slot.get_or_insert_with(|| Tall::new(g, b))
}

/// One thread's buffers for a step, kept between steps.
#[derive(Default)]
struct Work {
    /// Each layer's output for the images in flight, in its
    /// [`Layer::out_layout`].
    acts: Vec<Vec<f32>>,
    /// Each layer's input, where it had to be converted to the layer's
    /// [`Layer::in_layout`].
    ins: Vec<Vec<f32>>,
    /// The gradient arriving at a layer's output, and the one it sends on.
    grads: [Vec<f32>; 2],
    /// A gradient converted between layouts, or the prediction converted
    /// for the loss.
    tmp: Vec<f32>,
    /// A gradient through an activation.
    act: Vec<f32>,
    /// Each convolution's column matrix from the forward pass, for its
    /// weight gradient.
    slots: Vec<Slot>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// `AE_MICRO_BATCH`, read once: the images each thread runs through the
/// whole stack at a time, instead of [`Stack::micro_batches`]' choice.
fn micro_batch_override() -> Option<usize> {
    static MB: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *MB.get_or_init(|| {
        std::env::var("AE_MICRO_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
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

    /// The forward pass alone, without a graph: the output of layer `tap`
    /// and of the last layer for every sample of `x`, each sample's values
    /// in the order of an `N × C × …` tensor. Each thread runs its share of
    /// the batch through every layer a micro-batch at a time.
    ///
    /// # Shapes
    /// `x`: `N × …` with the first layer's input size per sample.
    pub(crate) fn infer(&self, x: &Tensor, tap: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let nl = self.layers.len();
        if tap >= nl {
            bail!("layer stack: no layer {tap} in {nl}");
        }
        let n = x.dim(0)?;
        let ip = self.layers[0].in_per_image();
        if x.elem_count() != n * ip {
            bail!(
                "layer stack: input {:?} does not hold {n} samples of {ip} values",
                x.dims()
            );
        }
        let (tp, op) = (
            self.layers[tap].out_per_image(),
            self.layers[nl - 1].out_per_image(),
        );
        let x = x.contiguous()?;
        let params = self.params();
        let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
        let values = param_values(&guards)?;
        let (xs, xl) = x.storage_and_layout();
        let xv = cpu_values(&xs, xl, "input")?;
        let (mut taps, mut outs) = (Vec::with_capacity(n * tp), Vec::with_capacity(n * op));
        let ranges = chunks(n);
        let mut items = Vec::with_capacity(ranges.len());
        {
            let (mut t_rest, mut o_rest) = (taps.spare_capacity_mut(), outs.spare_capacity_mut());
            for r in ranges {
                let (t, tr) = std::mem::take(&mut t_rest).split_at_mut(r.len() * tp);
                let (o, or) = std::mem::take(&mut o_rest).split_at_mut(r.len() * op);
                (t_rest, o_rest) = (tr, or);
                items.push((r, t, o));
            }
        }
        par_map(items, |(r, t, o)| {
            with_work(|work, bufs| {
                self.prepare(&values, work);
                for mb in self.micro_batches(&r) {
                    let b = mb.len();
                    let xb = &xv[mb.start * ip..mb.end * ip];
                    self.forward_micro(xb, b, &values, work, bufs);
                    let at = (mb.start - r.start, mb.end - r.start);
                    for (l, per, dst) in [(tap, tp, &mut *t), (nl - 1, op, &mut *o)] {
                        let src = &work.acts[l][..b * per];
                        let dst = &mut dst[at.0 * per..at.1 * per];
                        let layout = self.layers[l].out_layout();
                        if layout.same(Layout::Images, b) {
                            dst.iter_mut().zip(src).for_each(|(d, v)| *d = Out::new(*v));
                        } else if let Layout::Planes(c, p) = layout {
                            scatter(src, c, p, dst);
                        }
                    }
                }
            })
        });
        // SAFETY: the ranges cover all `n` samples, and every value of each
        // sample's part of both buffers was written above.
        unsafe {
            taps.set_len(n * tp);
            outs.set_len(n * op);
        }
        Ok((taps, outs))
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
        if n == 0 {
            bail!("layer stack: a training step needs at least one sample");
        }
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
        let values = param_values(&guards)?;
        let (xs, xl) = x.storage_and_layout();
        let (ts, tl) = target.storage_and_layout();
        let (xv, tv) = (
            cpu_values(&xs, xl, "input")?,
            cpu_values(&ts, tl, "target")?,
        );
        // d mean((p − t)²) / dp = 2 (p − t) / (N · op).
        let scale = 2.0 / (n * op).max(1) as f32;
        let sizes: Vec<usize> = values.iter().map(|v| v.len()).collect();
        let total: usize = sizes.iter().sum();
        let run = |r: std::ops::Range<usize>| {
            with_work(|work, bufs| {
                let mut acc = vec![0f32; total];
                let sq = self.run(&r, xv, tv, &values, &mut acc, scale, work, bufs);
                (acc, sq)
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

    /// `r` cut into micro-batches of nearly equal size, each run through
    /// every layer as one GEMM: up to 16 images, fewer when a convolution's
    /// GEMM scratch for them would pass four times [`scratch_budget`]
    /// (2.5 MiB), or `AE_MICRO_BATCH`. (On mnist-conv, 16 images beat 8, 11,
    /// 13 and 32 by 3–8%: larger GEMMs, activations still in cache.)
    fn micro_batches(&self, r: &std::ops::Range<usize>) -> Vec<std::ops::Range<usize>> {
        let len = r.len();
        let most = micro_batch_override().unwrap_or_else(|| {
            self.layers
                .iter()
                .map(|l| l.images_within(4 * scratch_budget(), len))
                .fold(16, usize::min)
        });
        let count = len.div_ceil(most.max(1)).max(1);
        let per = len.div_ceil(count).max(1);
        (r.start..r.end)
            .step_by(per)
            .map(|s| s..(s + per).min(r.end))
            .collect()
    }

    /// The layout of what layer `l` is given (the data's for the first).
    fn given(&self, l: usize) -> Layout {
        if l == 0 {
            Layout::Images
        } else {
            self.layers[l - 1].out_layout()
        }
    }

    /// Readies `work` for a pass: a buffer per layer, and each linear
    /// layer's weight transposed where its forward pass finds it.
    fn prepare(&self, values: &[&[f32]], work: &mut Work) {
        let nl = self.layers.len();
        work.acts.resize_with(nl, Vec::new);
        work.ins.resize_with(nl, Vec::new);
        work.slots.resize_with(nl, Slot::default);
        for (layer, (slot, w)) in self
            .layers
            .iter()
            .zip(work.slots.iter_mut().zip(values.iter().step_by(2)))
        {
            if let Layer::Linear { inp, out, .. } = layer
                && transposes(*inp, *out)
            {
                grow(&mut slot.keep, w.len());
                transpose(w, *out, *inp, &mut slot.keep[..w.len()]);
            }
        }
    }

    /// The forward pass of `b` images `xb` (in the data's layout): each
    /// layer's output in `work.acts`, converting a layer's input into
    /// `work.ins` where its layout differs.
    fn forward_micro(
        &self,
        xb: &[f32],
        b: usize,
        values: &[&[f32]],
        work: &mut Work,
        bufs: &mut Bufs,
    ) {
        for (l, layer) in self.layers.iter().enumerate() {
            let (ipl, opl) = (b * layer.in_per_image(), b * layer.out_per_image());
            let (done, rest) = work.acts.split_at_mut(l);
            let src: &[f32] = if l == 0 { xb } else { &done[l - 1][..ipl] };
            let input: &[f32] = if self.given(l).same(layer.in_layout(), b) {
                src
            } else {
                let buf = &mut work.ins[l];
                grow(buf, ipl);
                self.given(l)
                    .convert(layer.in_layout(), src, &mut buf[..ipl], b);
                &buf[..ipl]
            };
            let y = &mut rest[0];
            grow(y, opl);
            let (w, bias) = (values[2 * l], values[2 * l + 1]);
            layer.forward(input, w, bias, &mut y[..opl], &mut work.slots[l], bufs);
        }
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
        self.prepare(values, work);
        // Where each layer's weight and bias gradients start in `acc`.
        let mut offs = Vec::with_capacity(nl);
        let mut off = 0;
        for l in 0..nl {
            offs.push(off);
            off += values[2 * l].len() + values[2 * l + 1].len();
        }
        let given = |l: usize| self.given(l);
        let mut sq = 0f64;
        for mb in self.micro_batches(r) {
            let b = mb.len();
            let xb = &x[mb.start * ip0..mb.end * ip0];
            self.forward_micro(xb, b, values, work, bufs);
            // The loss, and its gradient with respect to the last output.
            let n_out = b * opn;
            let last = layers[nl - 1].out_layout();
            let flat = last.same(Layout::Images, b);
            let pred: &[f32] = if flat {
                &work.acts[nl - 1][..n_out]
            } else {
                grow(&mut work.tmp, n_out);
                last.convert(
                    Layout::Images,
                    &work.acts[nl - 1][..n_out],
                    &mut work.tmp[..n_out],
                    b,
                );
                &work.tmp[..n_out]
            };
            let t = &target[mb.start * opn..mb.end * opn];
            // Straight into grads[0] when the last layout is the data's.
            let into = usize::from(!flat);
            grow(&mut work.grads[into], n_out);
            let gr = &mut work.grads[into][..n_out];
            // Squares summed in 16 interleaved partial sums (they vectorise).
            let mut part = [0f32; 16];
            for ((gc, pc), tc) in gr.chunks_mut(16).zip(pred.chunks(16)).zip(t.chunks(16)) {
                for (((g, p), t), s) in gc.iter_mut().zip(pc).zip(tc).zip(&mut part) {
                    let d = p - t;
                    *s += d * d;
                    *g = scale * d;
                }
            }
            sq += f64::from(part.iter().sum::<f32>());
            if !flat {
                let [g0, g1] = &mut work.grads;
                grow(g0, n_out);
                Layout::Images.convert(last, &g1[..n_out], &mut g0[..n_out], b);
            }
            // Backward: the gradient of layer l's output is in grads[0], in
            // its output layout.
            for (l, layer) in layers.iter().enumerate().rev() {
                let (ipl, opl) = (b * layer.in_per_image(), b * layer.out_per_image());
                let converted = !given(l).same(layer.in_layout(), b);
                let input: &[f32] = if converted {
                    &work.ins[l][..ipl]
                } else if l == 0 {
                    xb
                } else {
                    &work.acts[l - 1][..ipl]
                };
                let y = &work.acts[l][..opl];
                let [g_in, g_out] = &mut work.grads;
                let dx = if l > 0 {
                    grow(g_out, ipl);
                    Some(&mut g_out[..ipl])
                } else {
                    None
                };
                let (w, bias) = (values[2 * l], values[2 * l + 1]);
                let (dw, db) = acc[offs[l]..offs[l] + w.len() + bias.len()].split_at_mut(w.len());
                let (slot, act) = (&mut work.slots[l], &mut work.act);
                layer.backward(input, w, y, &g_in[..opl], dx, dw, db, slot, act, bufs);
                work.grads.swap(0, 1);
                if l > 0 && converted {
                    // Back to the layout of the layer before.
                    grow(&mut work.tmp, ipl);
                    layer.in_layout().convert(
                        given(l),
                        &work.grads[0][..ipl],
                        &mut work.tmp[..ipl],
                        b,
                    );
                    std::mem::swap(&mut work.grads[0], &mut work.tmp);
                }
            }
        }
        sq
    }
}
