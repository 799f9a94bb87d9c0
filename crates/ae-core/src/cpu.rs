//! Fast CPU convolutions: im2col / col2im and one GEMM per image, forward and
//! backward, as candle custom ops.
//!
//! candle's CPU convolutions are slow for training: its transposed
//! convolution is a plain loop, it computes an input gradient even for the
//! data, and a bias gradient through a multi-axis `sum_keepdim` costs more
//! than the convolution. Here each layer is one op whose forward computes
//! `W · im2col(x) + b` (or `col2im(Wᵀ · x) + b` for a transposed convolution)
//! and whose backward computes the weight, bias and (only when the input
//! needs it) input gradients in one pass over the batch. Images are spread
//! over the threads of candle's CPU pool ([`par_map`]), each with its own
//! column buffer and gradient accumulators; a batch smaller than the thread
//! count splits each GEMM's rows over the pool instead. 1-D convolutions run
//! as 2-D ones of height 1.
//!
//! Also here: a linear layer as one op ([`linear`]), the MSE loss as one op
//! ([`mse`]), and a small AVX-512 kernel for the weight gradients of layers
//! with few weight columns ([`weight_grad`]). Outputs are never zero-filled
//! before a kernel overwrites them ([`Out`]).

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

mod stack;

pub(crate) use stack::{Layer, Stack};

/// A value of an output buffer that is written before it is read: outputs
/// are allocated without zeroing, since every kernel here overwrites its
/// output entirely (zeroing a fresh activation of a few MiB costs as much
/// as the layer's arithmetic on small layers).
type Out = MaybeUninit<f32>;

/// How a `C × H × W` image maps to columns `C·kh·kw × oh·ow`:
/// `col[(c·kh + ky)·kw + kx, oy·ow + ox] = img[c, oy·sh − ph + ky, ox·sw − pw + kx]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn cols(&self) -> usize {
        self.oh * self.ow
    }

    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// `dst[j] = window[idx[j]]`: one row of a column matrix from a padded
/// plane, `idx` the windows' corners (increasing) from the tap's offset.
fn gather_taps(window: &[f32], idx: &[u32], dst: &mut [f32]) {
    let reach = idx.last().map_or(0, |&i| i as usize + 1);
    assert!(reach <= window.len());
    for (d, &i) in dst.iter_mut().zip(idx) {
        // SAFETY: `idx` increases, and its last value is inside `window`
        // (asserted above).
        *d = unsafe { *window.get_unchecked(i as usize) };
    }
}

/// Adds the taps `tap(kx)` (`kx < kw`, one value per window) of one kernel
/// row into `plane`, starting at that kernel row's offset: the scatter-add
/// of col2im, `idx` the windows' corners (increasing). With a stride of 2
/// or more, two neighbouring taps go in one pass: window `p`'s two values
/// lie below window `p + 1`'s, so no addition waits on the one before it.
fn add_taps<'a>(plane: &mut [f32], g: &Geom, idx: &[u32], tap: impl Fn(usize) -> &'a [f32]) {
    let reach = idx.last().map_or(0, |&i| i as usize + 1);
    let mut kx = 0;
    while kx < g.kw {
        let window = &mut plane[kx..];
        if g.sw >= 2 && kx + 1 < g.kw {
            assert!(reach < window.len());
            for ((a, b), &i) in tap(kx).iter().zip(tap(kx + 1)).zip(idx) {
                let i = i as usize;
                // SAFETY: `idx` increases, and its last value plus one is
                // inside `window` (asserted above).
                unsafe {
                    *window.get_unchecked_mut(i) += a;
                    *window.get_unchecked_mut(i + 1) += b;
                }
            }
            kx += 2;
        } else {
            assert!(reach <= window.len());
            for (v, &i) in tap(kx).iter().zip(idx) {
                // SAFETY: as above, without the one.
                unsafe { *window.get_unchecked_mut(i as usize) += v };
            }
            kx += 1;
        }
    }
}

/// im2col and col2im for one geometry, through a zero-padded copy of one
/// plane at a time and a table of where each output column reads in it: each
/// row of the column matrix is then one branch-free gather (or, for col2im,
/// scatter-add) of `oh·ow` values, whatever the stride and padding.
pub(crate) struct Patches {
    g: Geom,
    /// Padded plane width.
    wp: usize,
    /// `idx[oy·ow + ox] = oy·sh·wp + ox·sw`: the top-left corner of each
    /// output's window in the padded plane.
    idx: Vec<u32>,
    /// One padded plane (its border is zero outside `col2im`, which adds
    /// into it and clears it again before returning).
    plane: Vec<f32>,
}

impl Patches {
    pub(crate) fn new(g: &Geom) -> Self {
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let idx = (0..g.oh)
            .flat_map(|oy| (0..g.ow).map(move |ox| (oy * g.sh * wp + ox * g.sw) as u32))
            .collect();
        Patches {
            g: *g,
            wp,
            idx,
            plane: vec![0.0; hp * wp],
        }
    }

    /// Writes image `img`'s columns into `col`, a matrix of `rows` rows with
    /// leading dimension `ld`, at column offset `off` (several images side by
    /// side).
    pub(crate) fn im2col(&mut self, img: &[f32], col: &mut [f32], ld: usize, off: usize) {
        let g = self.g;
        let p = g.cols();
        for c in 0..g.c {
            let src = &img[c * g.h * g.w..(c + 1) * g.h * g.w];
            for (y, row) in src.chunks(g.w).enumerate() {
                let start = (y + g.ph) * self.wp + g.pw;
                self.plane[start..start + g.w].copy_from_slice(row);
            }
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let dst = &mut col[((c * g.kh + ky) * g.kw + kx) * ld + off..][..p];
                    gather_taps(&self.plane[ky * self.wp + kx..], &self.idx, dst);
                }
            }
        }
    }

    /// Sums the columns of one image (at offset `off` of a matrix with leading
    /// dimension `ld`) into `img`, which it overwrites: the adjoint of
    /// [`Patches::im2col`]. With `epi`, each plane `c` gets `bias[c]` added
    /// and the activation applied on the way out.
    pub(crate) fn col2im(
        &mut self,
        col: &[f32],
        img: &mut [Out],
        ld: usize,
        off: usize,
        epi: Option<(&[f32], Fused)>,
    ) {
        let g = self.g;
        let p = g.cols();
        for c in 0..g.c {
            self.plane.fill(0.0);
            for ky in 0..g.kh {
                let tap = |kx: usize| &col[((c * g.kh + ky) * g.kw + kx) * ld + off..][..p];
                add_taps(&mut self.plane[ky * self.wp..], &g, &self.idx, tap);
            }
            let dst = &mut img[c * g.h * g.w..(c + 1) * g.h * g.w];
            let (bias, act) = epi.map_or((0.0, Fused::None), |(b, a)| (b[c], a));
            for (y, row) in dst.chunks_mut(g.w).enumerate() {
                let start = (y + g.ph) * self.wp + g.pw;
                act.bias_into(&self.plane[start..start + g.w], bias, row);
            }
        }
        // im2col, which may run next on these tables, needs the padded
        // border zero.
        self.plane.fill(0.0);
    }
}

/// im2col and col2im for `b` images at once, in channel planes
/// (`C × b·H·W`): the `b` images of one channel are stacked in one tall
/// zero-padded plane, so that a row of the column matrix (every window of
/// all `b` images for one kernel tap) is one gather, or for col2im one
/// scatter-add, instead of `b` short ones.
pub(crate) struct Tall {
    g: Geom,
    b: usize,
    /// Padded height and width of one image.
    hp: usize,
    wp: usize,
    /// `idx[(i·oh + oy)·ow + ox] = (i·hp + oy·sh)·wp + ox·sw`: the top-left
    /// corner of each window of image `i` in the tall plane.
    idx: Vec<u32>,
    /// The tall padded plane; zero outside the images' interiors between
    /// calls.
    plane: Vec<f32>,
}

impl Tall {
    pub(crate) fn new(g: &Geom, b: usize) -> Self {
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let mut idx = Vec::with_capacity(b * g.cols());
        for i in 0..b {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    idx.push(((i * hp + oy * g.sh) * wp + ox * g.sw) as u32);
                }
            }
        }
        Tall {
            g: *g,
            b,
            hp,
            wp,
            idx,
            plane: vec![0.0; b * hp * wp],
        }
    }

    /// Whether these tables are for `b` images of geometry `g`.
    pub(crate) fn fits(&self, g: &Geom, b: usize) -> bool {
        self.g == *g && self.b == b
    }

    /// Copies channel `c`'s `b` images from `x` (`C × b·H·W`) into the
    /// interiors of the tall plane.
    fn fill_plane(&mut self, x: &[f32], c: usize) {
        let g = self.g;
        let hw = g.h * g.w;
        let src = &x[c * self.b * hw..(c + 1) * self.b * hw];
        for (i, img) in src.chunks(hw).enumerate() {
            for (y, row) in img.chunks(g.w).enumerate() {
                let start = (i * self.hp + y + g.ph) * self.wp + g.pw;
                self.plane[start..start + g.w].copy_from_slice(row);
            }
        }
    }

    /// `col` (`C·kh·kw × b·oh·ow`) from `x` (`C × b·H·W`).
    pub(crate) fn im2col(&mut self, x: &[f32], col: &mut [f32]) {
        let g = self.g;
        let bp = self.b * g.cols();
        for c in 0..g.c {
            self.fill_plane(x, c);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let dst = &mut col[((c * g.kh + ky) * g.kw + kx) * bp..][..bp];
                    gather_taps(&self.plane[ky * self.wp + kx..], &self.idx, dst);
                }
            }
        }
    }

    /// The adjoint of [`Tall::im2col`]: sums `col`'s windows into `y`
    /// (`C × b·H·W`), which it overwrites; with `epi`, channel `c` gets
    /// `bias[c]` added and the activation applied on the way out.
    pub(crate) fn col2im(&mut self, col: &[f32], y: &mut [Out], epi: Option<(&[f32], Fused)>) {
        let g = self.g;
        let (bp, hw) = (self.b * g.cols(), g.h * g.w);
        for c in 0..g.c {
            self.plane.fill(0.0);
            for ky in 0..g.kh {
                let tap = |kx: usize| &col[((c * g.kh + ky) * g.kw + kx) * bp..][..bp];
                add_taps(&mut self.plane[ky * self.wp..], &g, &self.idx, tap);
            }
            let (bias, act) = epi.map_or((0.0, Fused::None), |(b, a)| (b[c], a));
            let dst = &mut y[c * self.b * hw..(c + 1) * self.b * hw];
            for (i, img) in dst.chunks_mut(hw).enumerate() {
                for (row_y, row) in img.chunks_mut(g.w).enumerate() {
                    let start = (i * self.hp + row_y + g.ph) * self.wp + g.pw;
                    act.bias_into(&self.plane[start..start + g.w], bias, row);
                }
            }
        }
        // `im2col` needs the padding zero.
        self.plane.fill(0.0);
    }
}

/// A row-major matrix operand: `(data, transposed)`, where a transposed
/// operand of logical shape `r × c` is stored as `c × r`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    t: bool,
}

/// `dst (m × n) = [dst +] a (m × k) · b (k × n)`, all row-major. With
/// `split` and a GEMM big enough, the rows of `dst` are split over the
/// pool's threads ([`par_map`]).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    dst: &mut [f32],
    accumulate: bool,
    split: bool,
) {
    debug_assert!(a.data.len() >= m * k && b.data.len() >= k * n && dst.len() >= m * n);
    let t = threads();
    if split && t > 1 && m * n * k >= PAR_MIN_MACS && m >= 2 * t && n > 0 {
        let per = m.div_ceil(t);
        let parts: Vec<(usize, &mut [f32])> = dst[..m * n]
            .chunks_mut(per * n)
            .enumerate()
            .map(|(i, d)| (i * per, d))
            .collect();
        par_map(parts, |(m0, d)| {
            gemm_block(m, m0, d.len() / n, n, 0, n, k, a, b, d, accumulate);
        });
    } else if split && t > 1 && m == 1 && n * k >= PAR_MIN_MACS_ROW && n >= 32 * t {
        // One row (a matrix-vector product, as a batch of one through a
        // linear layer): split its columns instead.
        let per = n.div_ceil(t);
        let parts: Vec<(usize, &mut [f32])> = dst[..n]
            .chunks_mut(per)
            .enumerate()
            .map(|(i, d)| (i * per, d))
            .collect();
        par_map(parts, |(n0, d)| {
            gemm_block(1, 0, 1, n, n0, d.len(), k, a, b, d, accumulate);
        });
    } else {
        gemm_block(m, 0, m, n, 0, n, k, a, b, dst, accumulate);
    }
}

/// The block of rows `m0 .. m0 + rows` and columns `n0 .. n0 + cols` of
/// `a · b` (`a`: `m × k`, `b`: `k × n`) into `dst` (`rows × cols`,
/// row-major), on this thread.
#[allow(clippy::too_many_arguments)]
fn gemm_block(
    m: usize,
    m0: usize,
    rows: usize,
    n: usize,
    n0: usize,
    cols: usize,
    k: usize,
    a: Mat,
    b: Mat,
    dst: &mut [f32],
    accumulate: bool,
) {
    let (a_rs, a_cs) = if a.t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b.t { (1, k) } else { (n, 1) };
    assert!(dst.len() >= rows * cols && m0 + rows <= m && n0 + cols <= n);
    assert!(a.data.len() >= m * k && b.data.len() >= k * n);
    // SAFETY: the block's rows of `a` and columns of `b` lie inside
    // `a.data` (m × k values) and `b.data` (k × n), asserted above, `dst`
    // holds rows × cols values, and `dst` does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            dst.as_mut_ptr(),
            1,
            cols as isize,
            accumulate,
            a.data.as_ptr().add(m0 * a_rs),
            a_cs as isize,
            a_rs as isize,
            b.data.as_ptr().add(n0 * b_cs),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `c (m × r) += a (m × q) · bᵀ` with `b` of `r × q`, all row-major: a
/// weight gradient, summed over `q` (every position of a chunk of images).
/// With few columns (`r ≤ 12`, a 3×3 kernel over one channel) and AVX-512,
/// through [`abt_avx512`]: `gemm` reaches only about 33 GFLOP/s on such
/// shapes (32 × 9 outputs, each a sum over thousands of values).
fn weight_grad(m: usize, r: usize, q: usize, a: &[f32], b: &[f32], c: &mut [f32], split: bool) {
    assert!(a.len() >= m * q && b.len() >= r * q && c.len() >= m * r);
    #[cfg(target_arch = "x86_64")]
    {
        // `is_x86_feature_detected!` caches what it finds.
        let has = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma");
        if has && r <= 12 && !split {
            macro_rules! small {
                ($($n:literal)*) => {
                    match r {
                        // SAFETY: the CPU has AVX-512F and FMA (checked
                        // above); the sizes were asserted above.
                        $($n => unsafe { abt_avx512::<$n>(m, q, a, b, c) },)*
                        _ => unreachable!("r ≤ 12"),
                    }
                };
            }
            small!(1 2 3 4 5 6 7 8 9 10 11 12);
            return;
        }
    }
    let (a, b) = (Mat { data: a, t: false }, Mat { data: b, t: true });
    matmul(m, r, q, a, b, c, true, split);
}

/// [`weight_grad`] for `R` columns, with AVX-512: two rows of `a` at a
/// time against all `R` rows of `b`, 16 partial sums per output in 2 · R
/// vector registers.
///
/// # Safety
/// The CPU must have AVX-512F and FMA; `a`, `b`, `c` must hold `m × q`,
/// `R × q` and `m × R` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn abt_avx512<const R: usize>(m: usize, q: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    const L: usize = 16;
    let qv = q / L * L;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i < m {
        let two = i + 1 < m;
        // The second row repeats the first when `m` is odd (its sums are
        // then not stored).
        let i1 = if two { i + 1 } else { i };
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        let mut k0 = 0;
        while k0 < qv {
            // SAFETY: rows i, i1 < m of `a` and rows j < R of `b` hold q
            // values each, and k0 + 16 ≤ qv ≤ q.
            let (a0, a1) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i * q + k0)),
                    _mm512_loadu_ps(pa.add(i1 * q + k0)),
                )
            };
            for j in 0..R {
                let bv: __m512 = unsafe { _mm512_loadu_ps(pb.add(j * q + k0)) };
                acc0[j] = _mm512_fmadd_ps(a0, bv, acc0[j]);
                acc1[j] = _mm512_fmadd_ps(a1, bv, acc1[j]);
            }
            k0 += L;
        }
        for (row, acc) in [(i, &acc0), (i1, &acc1)]
            .into_iter()
            .take(if two { 2 } else { 1 })
        {
            let ar = &a[row * q..(row + 1) * q];
            for (j, v) in acc.iter().enumerate() {
                let br = &b[j * q..(j + 1) * q];
                let tail: f32 = ar[qv..].iter().zip(&br[qv..]).map(|(x, y)| x * y).sum();
                c[row * R + j] += _mm512_reduce_add_ps(*v) + tail;
            }
        }
        i += if two { 2 } else { 1 };
    }
}

/// Threads of candle's CPU pool (its workers and the calling thread), which
/// the ops here share with candle's own elementwise ops.
pub(crate) fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// `f` applied to each item, the items spread over candle's CPU thread pool
/// (see [`threads`]): the same threads as candle's own ops, so a training
/// step keeps one set of threads busy instead of two sets competing for the
/// cores. One item runs on the calling thread.
pub(crate) fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    thread_local! {
        /// Set on a thread while it runs items: a nested call runs inline
        /// (the pool takes one job at a time).
        static IN_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if items.len() <= 1 || IN_POOL.with(|c| c.get()) {
        return items.into_iter().map(f).collect();
    }
    let todo: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let done: Vec<Mutex<Option<R>>> = todo.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| {
        let was = IN_POOL.with(|c| c.replace(true));
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = todo.get(i) else { break };
            // Each slot is taken once, so these locks never wait.
            let item = slot.lock().ok().and_then(|mut s| s.take());
            if let Some(item) = item {
                let r = f(item);
                if let Ok(mut d) = done[i].lock() {
                    *d = Some(r);
                }
            }
        }
        IN_POOL.with(|c| c.set(was));
    });
    done.into_iter()
        .map(|d| {
            d.into_inner()
                .ok()
                .flatten()
                .expect("the pool ran every item (a panic in one propagates)")
        })
        .collect()
}

/// The scratch values one GEMM's images may take: 640 KiB of f32 by
/// default (measured on mnist-conv: 512–720 KiB beat 1 MiB by 3–5% and
/// 256 KiB), or `AE_COL_BUDGET` values, read once.
fn scratch_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("AE_COL_BUDGET")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .unwrap_or(160 << 10)
    })
}

/// `part` of a fresh buffer, zeroed by the thread about to write it, for
/// code that needs initialised values (a GEMM's output).
fn init_zeroed(part: &mut [Out]) -> &mut [f32] {
    part.fill(Out::new(0.0));
    // SAFETY: every value was just initialised, and `MaybeUninit<f32>` has
    // the layout of `f32`.
    unsafe { &mut *(part as *mut [Out] as *mut [f32]) }
}

/// A fresh buffer of `a.len()` values, `f(a part, b part, out part)` run on
/// parts of at least [`SMALL`] values spread over the pool (one part, on
/// the calling thread, for short inputs).
fn zip_par(a: &[f32], b: &[f32], f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len());
    let step = a.len().div_ceil(threads()).max(SMALL);
    let parts: Vec<_> = out
        .spare_capacity_mut()
        .chunks_mut(step)
        .zip(a.chunks(step).zip(b.chunks(step)))
        .collect();
    par_map(parts, |(o, (a, b))| f(a, b, init_zeroed(o)));
    // SAFETY: the parts cover all `a.len()` values, each initialised
    // (`init_zeroed`).
    unsafe { out.set_len(a.len()) };
    out
}

/// Elementwise work below this many values runs on the calling thread.
const SMALL: usize = 1 << 15;

/// A GEMM of fewer multiply-adds than this runs on one thread: splitting it
/// costs more in synchronisation than it saves ([`matmul`] checks).
const PAR_MIN_MACS: usize = 1 << 19;

/// A matrix-vector product of fewer multiply-adds than this runs on one
/// thread (it is slower per multiply-add than a GEMM, so it is worth
/// splitting sooner).
const PAR_MIN_MACS_ROW: usize = 1 << 16;

/// Whether each GEMM for a batch of `n` images should split its rows over
/// the pool: only when there are too few images to spread across threads.
fn split_gemms(n: usize) -> bool {
    n < threads()
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: the fast CPU convolution needs f32")
    };
    if !l.is_contiguous() {
        bail!("{what}: the fast CPU convolution needs a contiguous tensor");
    }
    Ok(&v[l.start_offset()..l.start_offset() + l.shape().elem_count()])
}

/// The f32 values of a custom op's three inputs, named for errors.
fn slices3<'a>(inputs: [(&'a CpuStorage, &Layout, &str); 3]) -> Result<[&'a [f32]; 3]> {
    let [a, b, c] = inputs;
    Ok([
        slice(a.0, a.1, a.2)?,
        slice(b.0, b.1, b.2)?,
        slice(c.0, c.1, c.2)?,
    ])
}

/// Splits `0..n` into at most `threads()` contiguous chunks.
fn chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let t = threads().min(n.max(1));
    let per = n.div_ceil(t);
    (0..t)
        .map(|i| i * per..((i + 1) * per).min(n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// The sum of `v`, in 16 interleaved partial sums: a plain `iter().sum()`
/// adds one value at a time (float addition does not reassociate), one
/// add's latency per value; these vectorise.
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut it = v.chunks_exact(16);
    for c in &mut it {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
}

/// Sums per-thread partial gradients.
fn reduce(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for p in it {
        for (a, b) in acc.iter_mut().zip(p) {
            *a += b;
        }
    }
    acc
}

/// Convolution (`transposed = false`) or transposed convolution with bias.
/// `g` maps the convolution's *larger* side to its smaller one: for a
/// convolution the input to the output, for a transposed one the output to
/// the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvOp {
    pub g: Geom,
    pub cin: usize,
    pub cout: usize,
    pub transposed: bool,
    /// 1-D: inputs and outputs are `N × C × L`.
    pub one_d: bool,
    /// The activation applied to the output (fused; the backward takes its
    /// derivative from the output).
    pub act: Fused,
}

/// An activation fused into a kernel: applied to the output in the forward
/// pass, its derivative taken from that output in the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fused {
    /// The identity.
    None,
    /// `max(v, 0)`.
    Relu,
    /// `1 / (1 + e^−v)`.
    Sigmoid,
}

impl Fused {
    /// `out = act(src + bias)`, in one pass.
    fn bias_into(self, src: &[f32], bias: f32, out: &mut [Out]) {
        let pairs = out.iter_mut().zip(src);
        match self {
            Fused::None => pairs.for_each(|(o, s)| *o = Out::new(s + bias)),
            Fused::Relu => pairs.for_each(|(o, s)| *o = Out::new((s + bias).max(0.0))),
            Fused::Sigmoid => {
                pairs.for_each(|(o, s)| *o = Out::new(1.0 / (1.0 + (-(s + bias)).exp())))
            }
        }
    }

    /// `row = act(row + bias)`, in place, one bias for the whole row.
    fn bias_row_in_place(self, row: &mut [f32], bias: f32) {
        match self {
            Fused::None => row.iter_mut().for_each(|v| *v += bias),
            Fused::Relu => row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
            Fused::Sigmoid => row
                .iter_mut()
                .for_each(|v| *v = 1.0 / (1.0 + (-(*v + bias)).exp())),
        }
    }

    /// `row = act(row + bias)`, in place.
    fn bias_in_place(self, row: &mut [f32], bias: &[f32]) {
        let pairs = row.iter_mut().zip(bias);
        match self {
            Fused::None => pairs.for_each(|(v, b)| *v += b),
            Fused::Relu => pairs.for_each(|(v, b)| *v = (*v + b).max(0.0)),
            Fused::Sigmoid => pairs.for_each(|(v, b)| *v = 1.0 / (1.0 + (-(*v + b)).exp())),
        }
    }

    /// `dy` through the activation, from its output `y`, into a new buffer
    /// (spread over the pool when large).
    fn grad_par(self, dy: &[f32], y: &[f32]) -> Vec<f32> {
        zip_par(dy, y, |d, y, o| self.grad_into(d, y, o))
    }

    /// The same activation applied by candle's own ops.
    pub(crate) fn apply_tensor(self, t: &Tensor) -> Result<Tensor> {
        match self {
            Fused::None => Ok(t.clone()),
            Fused::Relu => t.relu(),
            Fused::Sigmoid => candle_nn::ops::sigmoid(t),
        }
    }

    /// `out = dy` through the activation, from its output `y`.
    fn grad_into(self, dy: &[f32], y: &[f32], out: &mut [f32]) {
        match self {
            Fused::Relu => {
                // Branch-free (a mask of all ones or all zeros): half the
                // outputs of a ReLU are zero, in no order a branch predictor
                // could follow.
                for ((o, d), y) in out.iter_mut().zip(dy).zip(y) {
                    let keep = u32::from(*y > 0.0).wrapping_neg();
                    *o = f32::from_bits(d.to_bits() & keep);
                }
            }
            Fused::Sigmoid => {
                for ((o, d), y) in out.iter_mut().zip(dy).zip(y) {
                    *o = d * y * (1.0 - y);
                }
            }
            Fused::None => out.copy_from_slice(dy),
        }
    }
}

impl ConvOp {
    fn in_per_image(&self) -> usize {
        if self.transposed {
            self.cin * self.g.cols()
        } else {
            self.g.image()
        }
    }

    fn out_per_image(&self) -> usize {
        if self.transposed {
            self.g.image()
        } else {
            self.cout * self.g.cols()
        }
    }

    /// The output shape for `n` images.
    pub(crate) fn out_dims(&self, n: usize) -> Vec<usize> {
        let (h, w) = if self.transposed {
            (self.g.h, self.g.w)
        } else {
            (self.g.oh, self.g.ow)
        };
        if self.one_d {
            vec![n, self.cout, w]
        } else {
            vec![n, self.cout, h, w]
        }
    }

    /// Images per GEMM: as many as fit the scratch of one GEMM (the column
    /// matrix and the other operand or result) in [`scratch_budget`]
    /// values, so that it stays in cache between the passes over it.
    /// (Counting the output too, or the activation's gradient, made chunks
    /// smaller and a training step 2–3% slower.)
    fn images_per_gemm(&self, n: usize) -> usize {
        self.images_within(scratch_budget(), n)
    }

    /// Images (at least one, at most `n`) whose column matrix and other
    /// operand fit in `budget` values.
    fn images_within(&self, budget: usize, n: usize) -> usize {
        let other = if self.transposed { self.cin } else { self.cout };
        let per = ((self.g.rows() + other) * self.g.cols()).max(1);
        (budget / per).clamp(1, n.max(1))
    }

    /// Forward for `b` consecutive images (`x`: `b × in`, `y`: `b × out`,
    /// which it overwrites, activation included), as one GEMM over all their
    /// columns.
    fn forward_chunk(
        &self,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        y: &mut [Out],
        bufs: &mut Bufs,
        split: bool,
    ) {
        let g = &self.g;
        let (k, p) = (g.rows(), g.cols());
        let (ip, op) = (self.in_per_image(), self.out_per_image());
        let b = x.len() / ip;
        let bp = b * p;
        if self.transposed {
            // col (K × BP) = Wmᵀ (K × Cin) · X (Cin × BP); y_i = col2im(col_i) + b.
            let (col, xg) = bufs.pair(k * bp, self.cin * bp);
            gather(x, self.cin, p, xg);
            matmul(
                k,
                bp,
                self.cin,
                Mat { data: wt, t: true },
                Mat { data: xg, t: false },
                col,
                false,
                split,
            );
            let mut patches = Patches::new(g);
            for (i, yi) in y.chunks_mut(op).enumerate() {
                patches.col2im(col, yi, bp, i * p, Some((bias, self.act)));
            }
        } else {
            // Y (Cout × BP) = W (Cout × K) · [im2col(x_1) … im2col(x_b)] (K × BP).
            let (col, tmp) = bufs.pair(k * bp, self.cout * bp);
            let mut patches = Patches::new(g);
            for (i, xi) in x.chunks(ip).enumerate() {
                patches.im2col(xi, col, bp, i * p);
            }
            matmul(
                self.cout,
                bp,
                k,
                Mat { data: wt, t: false },
                Mat {
                    data: col,
                    t: false,
                },
                tmp,
                false,
                split,
            );
            for (i, yi) in y.chunks_mut(op).enumerate() {
                for (c, row) in yi.chunks_mut(p).enumerate() {
                    let src = &tmp[c * bp + i * p..c * bp + (i + 1) * p];
                    self.act.bias_into(src, bias[c], row);
                }
            }
        }
    }

    /// Backward for `b` consecutive images: accumulates into `dw` and `db`,
    /// overwrites `dx` (`b × in`) when given.
    #[allow(clippy::too_many_arguments)]
    fn backward_chunk(
        &self,
        x: &[f32],
        wt: &[f32],
        dy: &[f32],
        dx: Option<&mut [Out]>,
        dw: &mut [f32],
        db: &mut [f32],
        bufs: &mut Bufs,
        split: bool,
    ) {
        let g = &self.g;
        let (k, p) = (g.rows(), g.cols());
        let (ip, op) = (self.in_per_image(), self.out_per_image());
        let b = x.len() / ip;
        let bp = b * p;
        if self.transposed {
            // col = [im2col(dy_i)] (K × BP); dWm += X (Cin × BP) · colᵀ; dX = Wm · col.
            let (col, xg) = bufs.pair(k * bp, self.cin * bp);
            let mut patches = Patches::new(g);
            for (i, dyi) in dy.chunks(op).enumerate() {
                patches.im2col(dyi, col, bp, i * p);
            }
            gather(x, self.cin, p, xg);
            weight_grad(self.cin, k, bp, xg, col, dw, split);
            if let Some(dx) = dx {
                matmul(
                    self.cin,
                    bp,
                    k,
                    Mat { data: wt, t: false },
                    Mat {
                        data: col,
                        t: false,
                    },
                    xg,
                    false,
                    split,
                );
                scatter(xg, self.cin, p, dx);
            }
            let plane = g.h * g.w;
            for dyi in dy.chunks(op) {
                for (c, chunk) in dyi.chunks(plane).enumerate() {
                    db[c] += sum(chunk);
                }
            }
        } else {
            // dW += dY (Cout × BP) · colᵀ; dX_i = col2im((Wᵀ · dY)_i).
            let (col, dyg) = bufs.pair(k * bp, self.cout * bp);
            let mut patches = Patches::new(g);
            for (i, xi) in x.chunks(ip).enumerate() {
                patches.im2col(xi, col, bp, i * p);
            }
            gather(dy, self.cout, p, dyg);
            weight_grad(self.cout, k, bp, dyg, col, dw, split);
            for (c, row) in dyg.chunks(bp).enumerate() {
                db[c] += sum(row);
            }
            if let Some(dx) = dx {
                matmul(
                    k,
                    bp,
                    self.cout,
                    Mat { data: wt, t: true },
                    Mat {
                        data: dyg,
                        t: false,
                    },
                    col,
                    false,
                    split,
                );
                for (i, dxi) in dx.chunks_mut(ip).enumerate() {
                    patches.col2im(col, dxi, bp, i * p, None);
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's scratch buffers, kept between calls: a training step
    /// would otherwise allocate and zero them again in every layer.
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::new(Bufs::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones when they are in
/// use further up this thread's stack, should a job ever run inside
/// another on one thread).
fn with_bufs<R>(f: impl FnOnce(&mut Bufs) -> R) -> R {
    BUFS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => f(&mut bufs),
        Err(_) => f(&mut Bufs::default()),
    })
}

/// Scratch buffers of one thread, grown on demand.
#[derive(Default)]
struct Bufs {
    bufs: [Vec<f32>; 2],
    /// An incoming gradient through the activation.
    act: Vec<f32>,
}

impl Bufs {
    /// The two buffers, grown to at least `a` and `b` values.
    fn pair(&mut self, a: usize, b: usize) -> (&mut [f32], &mut [f32]) {
        for (buf, len) in self.bufs.iter_mut().zip([a, b]) {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
        let [x, y] = &mut self.bufs;
        (&mut x[..a], &mut y[..b])
    }
}

/// `dst (C × B·P)` from `src (B × C × P)`.
fn gather(src: &[f32], c: usize, p: usize, dst: &mut [f32]) {
    let b = src.len() / (c * p);
    for (i, img) in src.chunks(c * p).enumerate() {
        for (ch, row) in img.chunks(p).enumerate() {
            dst[ch * b * p + i * p..ch * b * p + (i + 1) * p].copy_from_slice(row);
        }
    }
}

/// `dst (B × C × P)` from `src (C × B·P)`.
fn scatter(src: &[f32], c: usize, p: usize, dst: &mut [Out]) {
    let b = dst.len() / (c * p);
    for (i, img) in dst.chunks_mut(c * p).enumerate() {
        for (ch, row) in img.chunks_mut(p).enumerate() {
            let src = &src[ch * b * p + i * p..ch * b * p + (i + 1) * p];
            row.iter_mut().zip(src).for_each(|(d, s)| *d = Out::new(*s));
        }
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        if self.transposed {
            "ae-conv-transpose"
        } else {
            "ae-conv"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, wt, b] = slices3([(s1, l1, "input"), (s2, l2, "weight"), (s3, l3, "bias")])?;
        let n = l1.dims()[0];
        let (ip, op) = (self.in_per_image(), self.out_per_image());
        let split = split_gemms(n);
        // Work items of one GEMM's worth of images each, taken by the
        // threads in turn (more items than threads keeps them evenly busy;
        // one item runs here without waking another thread, which is what
        // batch-1 latency is made of).
        let step = self.images_per_gemm(n.div_ceil(threads()));
        let mut y = Vec::with_capacity(n * op);
        let items: Vec<_> = x
            .chunks(step * ip)
            .zip(y.spare_capacity_mut().chunks_mut(step * op))
            .collect();
        par_map(items, |(xc, yc)| {
            with_bufs(|bufs| self.forward_chunk(xc, wt, b, yc, bufs, split))
        });
        // SAFETY: the items above cover all `n · op` values, and
        // `forward_chunk` writes every value of its part.
        unsafe { y.set_len(n * op) };
        Ok((CpuStorage::F32(y), Shape::from(self.out_dims(n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        b: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        // The activation's gradient is taken inside the backward op, chunk
        // by chunk, from the output `res`.
        let y = (self.act != Fused::None).then(|| res.clone());
        let grads = x.apply_op3_no_bwd(
            wt,
            &dy.contiguous()?,
            &ConvBwdOp {
                op: *self,
                need_dx,
                y,
            },
        )?;
        split_grads(&grads, x, wt, b, need_dx)
    }
}

/// The gradients of a layer's input (when `need_dx`), weight and bias, cut
/// from the one flat tensor `[dx | dweight | dbias]` a backward op returns.
#[allow(clippy::type_complexity)]
fn split_grads(
    grads: &Tensor,
    x: &Tensor,
    wt: &Tensor,
    b: &Tensor,
    need_dx: bool,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let nx = if need_dx { x.elem_count() } else { 0 };
    let (nw, nb) = (wt.elem_count(), b.elem_count());
    let dx = if need_dx {
        Some(grads.narrow(0, 0, nx)?.reshape(x.dims())?)
    } else {
        None
    };
    let dw = grads.narrow(0, nx, nw)?.reshape(wt.dims())?;
    let db = grads.narrow(0, nx + nw, nb)?.reshape(b.dims())?;
    Ok((dx, Some(dw), Some(db)))
}

/// `f` on the f32 values of the CPU tensor `t`, which must hold `len` of
/// them (`what` names it in errors).
fn with_cpu_slice<R>(
    t: &Tensor,
    len: usize,
    what: &str,
    f: impl FnOnce(&[f32]) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(s) = &*storage else {
        bail!("{what}: the fast CPU kernels need a CPU tensor")
    };
    let v = slice(s, layout, what)?;
    if v.len() != len {
        bail!("{what}: {} values where {len} were expected", v.len());
    }
    f(v)
}

/// The backward pass of a [`ConvOp`]: inputs `(x, weight, dy)`, output one
/// flat tensor `[dx (if needed) | dweight | dbias]`.
struct ConvBwdOp {
    op: ConvOp,
    need_dx: bool,
    /// The forward output, when `op.act`'s gradient is still to be applied
    /// to the incoming gradient.
    y: Option<Tensor>,
}

impl CustomOp3 for ConvBwdOp {
    fn name(&self) -> &'static str {
        "ae-conv-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, wt, dy] = slices3([
            (s1, l1, "input"),
            (s2, l2, "weight"),
            (s3, l3, "output gradient"),
        ])?;
        match &self.y {
            Some(y) => with_cpu_slice(y, dy.len(), "output", |y| {
                self.run([x, wt, dy], Some(y), l1.dims()[0])
            }),
            None => self.run([x, wt, dy], None, l1.dims()[0]),
        }
    }
}

impl ConvBwdOp {
    /// The backward pass over `n` images, `y` the forward output when the
    /// activation's gradient is to be taken here.
    fn run(
        &self,
        [x, wt, dy]: [&[f32]; 3],
        y: Option<&[f32]>,
        n: usize,
    ) -> Result<(CpuStorage, Shape)> {
        let op = &self.op;
        let (ip, opi) = (op.in_per_image(), op.out_per_image());
        let (nw, nb) = (wt.len(), op.cout);
        let split = split_gemms(n);
        // dx, then the weight and bias gradients appended without a copy.
        let nx = if self.need_dx { n * ip } else { 0 };
        let mut dx = Vec::with_capacity(nx + nw + nb);
        let ranges = chunks(n);
        let mut dx_parts: Vec<Option<&mut [Out]>> = Vec::new();
        {
            let mut rest = &mut dx.spare_capacity_mut()[..nx];
            for r in &ranges {
                if self.need_dx {
                    let (a, b) = rest.split_at_mut(r.len() * ip);
                    dx_parts.push(Some(a));
                    rest = b;
                } else {
                    dx_parts.push(None);
                }
            }
        }
        let run = |(r, mut dxs): (std::ops::Range<usize>, Option<&mut [Out]>)| {
            with_bufs(|bufs| {
                let mut acc = vec![0f32; nw + nb];
                let (dw, db) = acc.split_at_mut(nw);
                let step = op.images_per_gemm(r.len());
                let mut start = r.start;
                while start < r.end {
                    let end = (start + step).min(r.end);
                    let dxi = dxs
                        .as_deref_mut()
                        .map(|d| &mut d[(start - r.start) * ip..(end - r.start) * ip]);
                    let dyc = &dy[start * opi..end * opi];
                    // The activation's gradient, into a buffer of this
                    // thread that stays in cache for the GEMMs.
                    let mut act = std::mem::take(&mut bufs.act);
                    let dyc = match y {
                        Some(y) => {
                            act.resize(dyc.len().max(act.len()), 0.0);
                            let a = &mut act[..dyc.len()];
                            op.act.grad_into(dyc, &y[start * opi..end * opi], a);
                            &*a
                        }
                        None => dyc,
                    };
                    op.backward_chunk(&x[start * ip..end * ip], wt, dyc, dxi, dw, db, bufs, split);
                    bufs.act = act;
                    start = end;
                }
                acc
            })
        };
        let partials = par_map(ranges.into_iter().zip(dx_parts).collect(), run);
        // SAFETY: the ranges cover all `nx` values of dx, and
        // `backward_chunk` writes every value of its part.
        unsafe { dx.set_len(nx) };
        let mut out = dx;
        out.extend(reduce(partials));
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Whether the fast path applies: f32 on the CPU.
pub(crate) fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32
}

/// Convolution with bias through [`ConvOp`].
///
/// # Shapes
/// As [`crate::kernels::conv`].
pub(crate) fn conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
    act: Fused,
) -> Result<Tensor> {
    let op = conv_op(x.dims(), w.dims(), stride, padding, act)?;
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// The [`ConvOp`] of a convolution of an input of `x_dims` (`N × Cin × L` or
/// `N × Cin × H × W`) by a weight of `w_dims`.
pub(crate) fn conv_op(
    x_dims: &[usize],
    w_dims: &[usize],
    stride: usize,
    padding: usize,
    act: Fused,
) -> Result<ConvOp> {
    let one_d = x_dims.len() == 3;
    if !matches!(x_dims.len(), 3 | 4) || w_dims.len() != x_dims.len() {
        bail!("convolution: input {x_dims:?} and weight {w_dims:?} must both have rank 3 or 4");
    }
    let cin = x_dims[1];
    let (h, wd) = if one_d {
        (1, x_dims[2])
    } else {
        (x_dims[2], x_dims[3])
    };
    let (kh, kw) = if one_d {
        (1, w_dims[2])
    } else {
        (w_dims[2], w_dims[3])
    };
    let (sh, ph) = if one_d { (1, 0) } else { (stride, padding) };
    if w_dims[1] != cin {
        bail!(
            "convolution: input has {cin} channels, the weight expects {}",
            w_dims[1]
        );
    }
    let out = |n_in: usize, k: usize, s: usize, p: usize| {
        (n_in + 2 * p).checked_sub(k).map(|v| v / s + 1)
    };
    let (Some(oh), Some(ow)) = (out(h, kh, sh, ph), out(wd, kw, stride, padding)) else {
        bail!("convolution: kernel larger than the padded input");
    };
    let g = Geom {
        c: cin,
        h,
        w: wd,
        kh,
        kw,
        sh,
        sw: stride,
        ph,
        pw: padding,
        oh,
        ow,
    };
    Ok(ConvOp {
        g,
        cin,
        cout: w_dims[0],
        transposed: false,
        one_d,
        act,
    })
}

/// Transposed convolution with bias through [`ConvOp`].
///
/// # Shapes
/// As [`crate::kernels::conv_transpose`].
pub(crate) fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
    act: Fused,
) -> Result<Tensor> {
    let op = conv_transpose_op(x.dims(), w.dims(), stride, padding, output_padding, act)?;
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// The [`ConvOp`] of a transposed convolution of an input of `x_dims`
/// (`N × Cin × L` or `N × Cin × H × W`) by a weight of `w_dims`.
pub(crate) fn conv_transpose_op(
    x_dims: &[usize],
    w_dims: &[usize],
    stride: usize,
    padding: usize,
    output_padding: usize,
    act: Fused,
) -> Result<ConvOp> {
    let one_d = x_dims.len() == 3;
    if !matches!(x_dims.len(), 3 | 4) || w_dims.len() != x_dims.len() {
        bail!(
            "transposed convolution: input {x_dims:?} and weight {w_dims:?} must both have rank 3 or 4"
        );
    }
    let cin = x_dims[1];
    let (h, wd) = if one_d {
        (1, x_dims[2])
    } else {
        (x_dims[2], x_dims[3])
    };
    let (kh, kw) = if one_d {
        (1, w_dims[2])
    } else {
        (w_dims[2], w_dims[3])
    };
    let (sh, ph, oph) = if one_d {
        (1, 0, 0)
    } else {
        (stride, padding, output_padding)
    };
    if w_dims[0] != cin {
        bail!(
            "transposed convolution: input has {cin} channels, the weight expects {}",
            w_dims[0]
        );
    }
    if output_padding >= stride.max(1) && output_padding > 0 {
        bail!(
            "transposed convolution: output padding {output_padding} must be smaller than the stride {stride}"
        );
    }
    let out = |n_in: usize, k: usize, s: usize, p: usize, op: usize| {
        ((n_in - 1) * s + k + op)
            .checked_sub(2 * p)
            .filter(|&v| v > 0)
    };
    let (Some(oh), Some(ow)) = (
        out(h, kh, sh, ph, oph),
        out(wd, kw, stride, padding, output_padding),
    ) else {
        bail!("transposed convolution: empty output");
    };
    let cout = w_dims[1];
    // The geometry of the equivalent convolution from the output to the input.
    let g = Geom {
        c: cout,
        h: oh,
        w: ow,
        kh,
        kw,
        sh,
        sw: stride,
        ph,
        pw: padding,
        oh: h,
        ow: wd,
    };
    Ok(ConvOp {
        g,
        cin,
        cout,
        transposed: true,
        one_d,
        act,
    })
}

/// A fully connected layer `act(x · Wᵀ + b)` with `x` flattened from axis
/// 1, its output given the shape `out_dims` directly: one graph node where
/// flatten, matmul, bias, activation and reshape would make five.
#[derive(Debug, Clone)]
struct LinearOp {
    out_dims: Vec<usize>,
    act: Fused,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "ae-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, wt, b] = slices3([(s1, l1, "input"), (s2, l2, "weight"), (s3, l3, "bias")])?;
        let (out, inp) = (l2.dims()[0], l2.dims()[1]);
        let n = l1.dims()[0];
        // Each thread zeroes its block of rows, runs the GEMM into it and
        // adds the bias and activation while the block is in its cache.
        let t = threads();
        let per = if t > 1 && n * out * inp >= PAR_MIN_MACS && n >= 2 * t {
            n.div_ceil(t)
        } else {
            n
        };
        let mut y = Vec::with_capacity(n * out);
        let parts: Vec<(usize, &mut [Out])> = y
            .spare_capacity_mut()
            .chunks_mut(per.max(1) * out)
            .enumerate()
            .map(|(i, d)| (i * per, d))
            .collect();
        par_map(parts, |(m0, part)| {
            let part = init_zeroed(part);
            let rows = part.len() / out.max(1);
            let (x, w) = (Mat { data: x, t: false }, Mat { data: wt, t: true });
            if rows == n {
                // All rows here (a small batch): `matmul` may split columns.
                matmul(n, out, inp, x, w, part, false, true);
            } else {
                gemm_block(n, m0, rows, out, 0, out, inp, x, w, part, false);
            }
            for row in part.chunks_mut(out) {
                self.act.bias_in_place(row, b);
            }
        });
        // SAFETY: the parts cover all `n · out` values, each zeroed
        // (`init_zeroed`) before the GEMM wrote it.
        unsafe { y.set_len(n * out) };
        Ok((CpuStorage::F32(y), Shape::from(self.out_dims.clone())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        b: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        // The activation's gradient is taken inside the backward op.
        let y = (self.act != Fused::None).then(|| res.clone());
        let op = LinearBwdOp {
            need_dx,
            act: self.act,
            y,
        };
        let grads = x.apply_op3_no_bwd(wt, &dy.contiguous()?, &op)?;
        split_grads(&grads, x, wt, b, need_dx)
    }
}

/// The backward pass of a [`LinearOp`]: inputs `(x, weight, dy)`, output one
/// flat tensor `[dx (if needed) | dweight | dbias]`.
struct LinearBwdOp {
    need_dx: bool,
    act: Fused,
    /// The forward output, when `act`'s gradient is still to be applied to
    /// the incoming gradient.
    y: Option<Tensor>,
}

impl CustomOp3 for LinearBwdOp {
    fn name(&self) -> &'static str {
        "ae-linear-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, wt, dy] = slices3([
            (s1, l1, "input"),
            (s2, l2, "weight"),
            (s3, l3, "output gradient"),
        ])?;
        let (out, inp) = (l2.dims()[0], l2.dims()[1]);
        let n = l1.dims()[0];
        let act_grad;
        let dy = match &self.y {
            Some(y) => {
                act_grad = with_cpu_slice(y, dy.len(), "output", |y| Ok(self.act.grad_par(dy, y)))?;
                &act_grad[..]
            }
            None => dy,
        };
        let nx = if self.need_dx { n * inp } else { 0 };
        let mut g = vec![0f32; nx + out * inp + out];
        let (dx, rest) = g.split_at_mut(nx);
        let (dw, db) = rest.split_at_mut(out * inp);
        if self.need_dx {
            // dX (N × in) = dY (N × out) · W (out × in).
            matmul(
                n,
                inp,
                out,
                Mat { data: dy, t: false },
                Mat { data: wt, t: false },
                dx,
                false,
                true,
            );
        }
        // dW (out × in) = dYᵀ (out × N) · X (N × in).
        matmul(
            out,
            inp,
            n,
            Mat { data: dy, t: true },
            Mat { data: x, t: false },
            dw,
            false,
            true,
        );
        for row in dy.chunks(out) {
            db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
        }
        let len = g.len();
        Ok((CpuStorage::F32(g), Shape::from(len)))
    }
}

/// A fully connected layer through [`LinearOp`].
///
/// # Shapes
/// `x`: `N × …` with `in` values per sample; `w`: `out × in`; `b`: `out`;
/// returns `out_dims` (`N` first, `out` values per sample).
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    act: Fused,
    out_dims: &[usize],
) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let n = x.dim(0)?;
    let per: usize = x.dims()[1..].iter().product();
    if per != inp {
        bail!("linear: input has {per} values per sample, the weight expects {inp}");
    }
    if out_dims.first() != Some(&n) || out_dims[1..].iter().product::<usize>() != out {
        bail!("linear: output shape {out_dims:?} does not hold {n} x {out}");
    }
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LinearOp {
            out_dims: out_dims.to_vec(),
            act,
        },
    )
}

/// The mean squared difference of two tensors of one shape, as one graph
/// node (candle's ops make it four: a difference, a square, a sum and a
/// scale, each with a full-size gradient in the backward pass).
struct MseMean;

impl candle_core::CustomOp2 for MseMean {
    fn name(&self) -> &'static str {
        "ae-mse"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, t) = (slice(s1, l1, "prediction")?, slice(s2, l2, "target")?);
        let step = p.len().div_ceil(threads()).max(SMALL);
        let parts: Vec<_> = p.chunks(step).zip(t.chunks(step)).collect();
        // Each part summed in 16 interleaved f32 sums, the parts in f64.
        let total: f64 = par_map(parts, |(p, t)| {
            let mut acc = [0f32; 16];
            let (cp, ct) = (p.chunks_exact(16), t.chunks_exact(16));
            let rest: f32 = cp
                .remainder()
                .iter()
                .zip(ct.remainder())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            for (a, b) in cp.zip(ct) {
                for ((s, a), b) in acc.iter_mut().zip(a).zip(b) {
                    *s += (a - b) * (a - b);
                }
            }
            f64::from(acc.iter().sum::<f32>() + rest)
        })
        .into_iter()
        .sum();
        let mean = (total / p.len().max(1) as f64) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        p: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // d/dp = 2 (p − t) / N · grad; d/dt is its negation.
        let scale = 2.0 * grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?
            / p.elem_count().max(1) as f32;
        let dp = p.apply_op2_no_bwd(t, &ScaledDiff(scale))?;
        let dt = if t.track_op() { Some(dp.neg()?) } else { None };
        Ok((Some(dp), dt))
    }
}

/// `scale · (p − t)`.
struct ScaledDiff(f32);

impl candle_core::CustomOp2 for ScaledDiff {
    fn name(&self) -> &'static str {
        "ae-scaled-difference"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, t) = (slice(s1, l1, "prediction")?, slice(s2, l2, "target")?);
        let s = self.0;
        let out = zip_par(p, t, |p, t, o| {
            for ((o, p), t) in o.iter_mut().zip(p).zip(t) {
                *o = s * (p - t);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The mean of `(p − t)²` over all values, through [`MseMean`].
///
/// # Shapes
/// `p` and `t` of one shape; returns a scalar.
pub(crate) fn mse(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    if p.dims() != t.dims() {
        bail!(
            "mse: prediction {:?} and target {:?} differ in shape",
            p.dims(),
            t.dims()
        );
    }
    p.contiguous()?.apply_op2(&t.contiguous()?, MseMean)
}

#[cfg(test)]
mod tests {
    /// The weight-gradient kernel against a plain triple loop, accumulating
    /// into what `c` held, over odd row counts and sums of lengths that are
    /// and are not multiples of 16.
    #[test]
    fn weight_grad_matches_a_plain_loop() {
        let mut seed = 1u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for m in [1, 2, 3, 5, 32] {
            for r in [1, 2, 5, 9, 12, 13, 30] {
                for q in [1, 15, 16, 17, 100, 2156] {
                    let a: Vec<f32> = (0..m * q).map(|_| next()).collect();
                    let b: Vec<f32> = (0..r * q).map(|_| next()).collect();
                    let c0: Vec<f32> = (0..m * r).map(|_| next()).collect();
                    let mut c = c0.clone();
                    super::weight_grad(m, r, q, &a, &b, &mut c, false);
                    for i in 0..m {
                        for j in 0..r {
                            let want: f32 = c0[i * r + j]
                                + (0..q).map(|k| a[i * q + k] * b[j * q + k]).sum::<f32>();
                            let got = c[i * r + j];
                            assert!(
                                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                                "m {m} r {r} q {q} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
