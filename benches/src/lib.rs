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
