//! Integration tests of ae-core (one binary, so candle links once).

mod checkpoint;
mod config;
mod context;
mod fused;
mod shapes;
mod training;

use ae_core::{Model, ModelConfig};
use candle_core::{Device, Tensor};

/// A deterministic pseudo-random batch in [0, 1).
pub fn batch(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ae_core::rng(seed);
    ae_core::randn(&mut rng, dims, &Device::Cpu)
        .and_then(|t| candle_nn::ops::sigmoid(&t))
        .expect("batch")
}

/// `[n] ++ model input dims`.
pub fn batch_dims(model: &Model, n: usize) -> Vec<usize> {
    use ae_core::Encoder;
    let mut d = vec![n];
    d.extend(model.input_dims());
    d
}

pub fn model(cfg: ModelConfig, seed: u64) -> Model {
    Model::new(cfg, seed, &Device::Cpu).expect("valid config")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("diff")
}
