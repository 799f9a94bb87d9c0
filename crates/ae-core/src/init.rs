//! Seeded parameter initialisation.
//!
//! candle's own CPU random generator cannot be seeded, so parameters are drawn
//! here from a [`Rng`] seeded by the caller: the same seed gives bit-identical
//! weights on every machine.

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap, var_builder::SimpleBackend};
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The random generator used everywhere in ae: ChaCha8, portable and seedable.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A [`Rng`] from a seed.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Standard normal samples of the given shape, drawn from `rng`.
pub fn randn(rng: &mut Rng, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(v, shape, device)
}

/// A `VarBuilder` backend that creates trainable variables in a [`VarMap`],
/// drawing their initial values from a seeded [`Rng`].
struct SeededVarMap {
    map: VarMap,
    rng: Mutex<Rng>,
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock poisoned");
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "parameter `{name}` exists with shape {:?}, requested {:?}",
                    v.shape(),
                    s
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let mut rng = self.rng.lock().expect("rng lock poisoned");
        let values: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => (0..n)
                .map(|_| rng.random_range(lo as f32..=up as f32))
                .collect(),
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(&mut *rng);
                    mean as f32 + stdev as f32 * z
                })
                .collect(),
            Init::Kaiming { .. } => {
                // PyTorch's default for linear and conv layers: U(±1/sqrt(fan_in)).
                let dims = s.dims();
                let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
                let b = 1.0 / (fan_in as f32).sqrt();
                (0..n).map(|_| rng.random_range(-b..=b)).collect()
            }
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.map.data().lock().expect("var map lock poisoned");
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no parameter named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("var map lock poisoned")
            .contains_key(name)
    }
}

/// A `VarBuilder` whose parameters are created in `map` (so an optimiser can
/// train them and a checkpoint can save them), initialised from `seed`.
pub fn seeded_var_builder(map: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
    let backend = SeededVarMap {
        map: map.clone(),
        rng: Mutex::new(rng(seed)),
    };
    VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
}
