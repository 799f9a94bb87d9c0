//! # ae-core: autoencoder layers and architectures on candle
//!
//! The model half of ae. It provides:
//!
//! - three architecture families, each optionally variational:
//!   [`ConvAutoencoder`] (2-D images, `N × C × H × W`),
//!   [`Conv1dAutoencoder`] (signals, `N × C × L`) and [`DenseAutoencoder`]
//!   (vectors, `N × D`), configured by serde types ([`ConvAeConfig`],
//!   [`Conv1dAeConfig`], [`DenseAeConfig`]) with `deny_unknown_fields` and a
//!   `validate()` that names the wrong field and numbers;
//! - the [`Encoder`], [`Decoder`] and [`Autoencoder`] traits with typed outputs
//!   ([`ForwardOutput`], [`Latent`]);
//! - learned codecs: a [`ConvAeConfig`] with an `entropy_bottleneck` quantises
//!   its spatial latent and learns its density ([`Latent::Quantized`],
//!   [`PriorParams`]); `ae-codec` turns that into bytes;
//! - fast CPU kernels (f32) under every layer, used automatically, and a
//!   fused path for plain convolutional models: a whole training step
//!   ([`Autoencoder::mse_step`]) or inference pass ([`Autoencoder::infer`])
//!   without candle's graph, each thread running its share of the batch
//!   through the network a few images at a time;
//! - [`Model`]: a config, its network and its parameters, seeded
//!   initialisation, and checkpoints (`config.json` + `model.safetensors`).
//!
//! ```
//! use ae_core::{Autoencoder, ConvAeConfig, Model, ModelConfig, Mode};
//! use candle_core::{Device, Tensor};
//!
//! let model = Model::new(ModelConfig::Conv(ConvAeConfig::mnist()), 42, &Device::Cpu)?;
//! let x = Tensor::zeros((8, 1, 28, 28), candle_core::DType::F32, &Device::Cpu)?;
//! let out = model.forward(&x, Mode::Eval)?;
//! assert_eq!(out.reconstruction.dims(), &[8, 1, 28, 28]);
//! assert_eq!(out.latent.z().dims(), &[8, 32]);
//! # Ok::<(), ae_core::Error>(())
//! ```
//!
//! `ae-core` depends on no other `ae-*` crate.

pub mod checkpoint;
mod config;
mod conv;
mod cpu;
mod dense;
mod entropy;
mod error;
mod init;
mod kernels;
mod latent;
pub mod layers;
mod model;
pub mod pool;
mod traits;

pub use checkpoint::{CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE};
pub use config::{
    Activation, Conv1dAeConfig, ConvAeConfig, ConvLatent, DenseAeConfig, EntropyBottleneckConfig,
    MAX_COMPONENTS, MAX_DEPTH, MAX_ELEMENTS, ModelConfig, OutputActivation, PRESETS,
    PixelContextConfig,
};
pub use conv::{Conv1dAutoencoder, ConvAutoencoder};
pub use dense::DenseAutoencoder;
pub use entropy::{MIN_LIKELIHOOD, PriorParams};
pub use error::{Error, Result};
pub use init::{Rng, randn, rng, seeded_var_builder};
pub use model::{Model, Network};
pub use traits::{
    Autoencoder, Decoder, Encoder, ForwardOutput, Gradients, Latent, Mode, TrainStep,
};
