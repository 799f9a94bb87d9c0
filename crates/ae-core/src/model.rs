//! [`Model`]: any architecture together with its config and its trainable
//! parameters, which is what checkpoints save and load.

use candle_core::{Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::config::ModelConfig;
use crate::conv::{Conv1dAutoencoder, ConvAutoencoder};
use crate::dense::DenseAutoencoder;
use crate::error::Result;
use crate::init::{Rng, seeded_var_builder};
use crate::traits::{Autoencoder, Decoder, Encoder, ForwardOutput, Latent, Mode, TrainStep};

/// Any of `ae-core`'s architectures, chosen at run time from a [`ModelConfig`].
pub enum Network {
    /// A 2-D convolutional model.
    Conv(ConvAutoencoder),
    /// A 1-D convolutional model.
    Conv1d(Conv1dAutoencoder),
    /// A fully connected model.
    Dense(DenseAutoencoder),
}

macro_rules! each {
    ($self:expr, $n:ident => $e:expr) => {
        match $self {
            Network::Conv($n) => $e,
            Network::Conv1d($n) => $e,
            Network::Dense($n) => $e,
        }
    };
}

impl Network {
    /// Builds the architecture `config` describes, with parameters from `vb`.
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match config {
            ModelConfig::Conv(c) => Network::Conv(ConvAutoencoder::new(c.clone(), vb)?),
            ModelConfig::Conv1d(c) => Network::Conv1d(Conv1dAutoencoder::new(c.clone(), vb)?),
            ModelConfig::Dense(c) => Network::Dense(DenseAutoencoder::new(c.clone(), vb)?),
        })
    }
}

impl Encoder for Network {
    fn input_dims(&self) -> &[usize] {
        each!(self, m => m.input_dims())
    }

    fn latent_dims(&self) -> &[usize] {
        each!(self, m => m.latent_dims())
    }

    fn encode(&self, x: &Tensor, mode: Mode<'_>) -> Result<Latent> {
        each!(self, m => m.encode(x, mode))
    }
}

impl Decoder for Network {
    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        each!(self, m => m.decode(z, train))
    }

    fn decode_given(&self, z: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        each!(self, m => m.decode_given(z, x, train))
    }

    fn generate(&self, z: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        each!(self, m => m.generate(z, rng))
    }

    fn is_autoregressive(&self) -> bool {
        each!(self, m => m.is_autoregressive())
    }
}

impl Autoencoder for Network {
    fn is_variational(&self) -> bool {
        each!(self, m => m.is_variational())
    }

    fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<Option<TrainStep>> {
        each!(self, m => m.mse_step(x, target))
    }

    fn infer(&self, x: &Tensor) -> Result<ForwardOutput> {
        each!(self, m => m.infer(x))
    }
}

/// A model: its config, its network, and the variables that hold its
/// parameters (trainable, and saved by [`Model::save`]).
pub struct Model {
    config: ModelConfig,
    network: Network,
    vars: VarMap,
    device: Device,
}

impl Model {
    /// Validates `config` and builds the model with parameters initialised from
    /// `seed` (the same seed gives the same weights on every machine).
    pub fn new(config: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let vars = VarMap::new();
        let network = Network::new(&config, seeded_var_builder(&vars, seed, device))?;
        Ok(Model {
            config,
            network,
            vars,
            device: device.clone(),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The architecture.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variable map: every parameter and batch-norm statistic by name.
    pub fn var_map(&self) -> &VarMap {
        &self.vars
    }

    /// The variables an optimiser should update: all parameters except
    /// batch-norm running statistics, sorted by name.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.trainable_named_vars()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// [`Model::trainable_vars`] with their names.
    pub fn trainable_named_vars(&self) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
            .collect()
    }

    /// Every variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.vars.data().lock().expect("var map lock poisoned");
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.trainable_vars().iter().map(|v| v.elem_count()).sum()
    }
}

impl Encoder for Model {
    fn input_dims(&self) -> &[usize] {
        self.network.input_dims()
    }

    fn latent_dims(&self) -> &[usize] {
        self.network.latent_dims()
    }

    fn encode(&self, x: &Tensor, mode: Mode<'_>) -> Result<Latent> {
        self.network.encode(x, mode)
    }
}

impl Decoder for Model {
    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        self.network.decode(z, train)
    }

    fn decode_given(&self, z: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        self.network.decode_given(z, x, train)
    }

    fn generate(&self, z: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.network.generate(z, rng)
    }

    fn is_autoregressive(&self) -> bool {
        self.network.is_autoregressive()
    }
}

impl Autoencoder for Model {
    fn is_variational(&self) -> bool {
        self.network.is_variational()
    }

    fn mse_step(&self, x: &Tensor, target: &Tensor) -> Result<Option<TrainStep>> {
        self.network.mse_step(x, target)
    }

    fn infer(&self, x: &Tensor) -> Result<ForwardOutput> {
        self.network.infer(x)
    }
}
