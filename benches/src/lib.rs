//! Shared helpers of ae's criterion benchmarks (see `benches/`).
//!
//! Run them with `cargo bench -p ae-benches`; figures are recorded in
//! `docs/benchmarks.md`.

use ae_core::{ConvAeConfig, Model, ModelConfig};
use candle_core::{Device, Tensor};

/// The "mnist-conv" model (`ConvAeConfig::mnist()`), seeded.
pub fn mnist_conv() -> Model {
    Model::new(ModelConfig::Conv(ConvAeConfig::mnist()), 0, &Device::Cpu).expect("valid preset")
}

/// A batch of `n` pseudo-random 28×28 images in [0, 1).
pub fn images(n: usize) -> Tensor {
    let mut rng = ae_core::rng(1);
    let x = ae_core::randn(&mut rng, &[n, 1, 28, 28], &Device::Cpu).expect("tensor");
    (x.abs().expect("abs") * 0.3)
        .expect("scale")
        .clamp(0.0, 1.0)
        .expect("clamp")
}

/// The process set-up of the `ae` binary, so benchmarks measure what users
/// run: mimalloc that keeps freed pages (no purge), rayon pinned to the
/// available cores. Call first in `main`, before any thread starts.
pub fn tune_process() {
    // mimalloc's option `purge_delay` (15 in both of its option lists, v2 and v3):
    // -1 keeps freed memory instead of returning it to the OS, which would
    // zero it again on the next large allocation.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: a plain option setter of the linked mimalloc.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: called before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}
