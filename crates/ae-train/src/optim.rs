//! Optimisers whose state can be saved and restored (for `--resume`):
//! AdamW (Adam with decoupled weight decay) and SGD with momentum.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::config::OptimizerConfig;
use crate::error::{Error, Result};

/// Where an optimiser reads gradients: candle's `GradStore` (from
/// `backward`) or ae-core's [`ae_core::Gradients`] (from
/// [`ae_core::Autoencoder::mse_step`]).
pub trait Grads {
    /// The gradient of `param`, if it has one.
    fn grad(&self, param: &Tensor) -> Option<&Tensor>;

    /// Replaces the gradient of `param`.
    fn set_grad(&mut self, param: &Tensor, grad: Tensor);
}

impl Grads for GradStore {
    fn grad(&self, param: &Tensor) -> Option<&Tensor> {
        self.get(param)
    }

    fn set_grad(&mut self, param: &Tensor, grad: Tensor) {
        self.insert(param, grad);
    }
}

impl Grads for ae_core::Gradients {
    fn grad(&self, param: &Tensor) -> Option<&Tensor> {
        self.get(param)
    }

    fn set_grad(&mut self, param: &Tensor, grad: Tensor) {
        self.insert(param, grad);
    }
}

/// An optimiser over named variables.
///
/// The update runs as one plain loop over each parameter's values (on the
/// host), instead of a dozen tensor operations per parameter.
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<(String, Var)>,
    /// Adam: first and second moments; SGD: the momentum buffer (second unused).
    state: Vec<(Vec<f32>, Vec<f32>)>,
    steps: u64,
}

impl Optimizer {
    /// An optimiser for `vars` (names are used to save and restore state).
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self> {
        config.validate()?;
        let state = vars
            .iter()
            .map(|(_, v)| (vec![0.0; v.elem_count()], vec![0.0; v.elem_count()]))
            .collect();
        Ok(Optimizer {
            config,
            vars,
            state,
            steps: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update with learning rate `lr`; variables without a gradient are
    /// left alone. Large models update their variables on the kernels'
    /// thread pool ([`ae_core::pool`]), in groups of about equal size.
    pub fn step(&mut self, grads: &(impl Grads + Sync), lr: f64) -> Result<()> {
        self.steps += 1;
        let (config, t) = (self.config, self.steps as i32);
        let mut work = Vec::new();
        for ((_, var), state) in self.vars.iter().zip(self.state.iter_mut()) {
            if let Some(g) = grads.grad(var.as_tensor()) {
                work.push((var, g, state));
            }
        }
        let total: usize = work.iter().map(|w| w.0.elem_count()).sum();
        let groups = if total >= PARALLEL_UPDATE {
            ae_core::pool::threads().max(1)
        } else {
            1
        };
        // Largest first, each to the lightest group.
        work.sort_by_key(|w| std::cmp::Reverse(w.0.elem_count()));
        let mut parts: Vec<(usize, Vec<_>)> = (0..groups).map(|_| (0, Vec::new())).collect();
        for w in work {
            let lightest = (0..parts.len()).min_by_key(|&i| parts[i].0).unwrap_or(0);
            parts[lightest].0 += w.0.elem_count();
            parts[lightest].1.push(w);
        }
        let results = ae_core::pool::map(parts, |(_, part)| -> Result<()> {
            for (var, g, state) in part {
                update(config, t, lr, var, g, state)?;
            }
            Ok(())
        });
        results.into_iter().collect()
    }

    fn kind(&self) -> &'static str {
        match self.config {
            OptimizerConfig::Adamw { .. } => "adamw",
            OptimizerConfig::Sgd { .. } => "sgd",
        }
    }

    /// Saves the moments and the step count to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        for ((name, var), (s1, s2)) in self.vars.iter().zip(&self.state) {
            let cpu = candle_core::Device::Cpu;
            tensors.insert(
                format!("m.{name}"),
                Tensor::from_slice(s1, var.dims(), &cpu)?,
            );
            tensors.insert(
                format!("v.{name}"),
                Tensor::from_slice(s2, var.dims(), &cpu)?,
            );
        }
        let meta = HashMap::from([
            ("optimizer".to_string(), self.kind().to_string()),
            ("steps".to_string(), self.steps.to_string()),
        ]);
        let bytes = safetensors::serialize(tensors.iter(), Some(meta))
            .map_err(|e| Error::run_dir(path, format!("cannot serialise optimiser state: {e}")))?;
        ae_core::checkpoint::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Restores state saved by [`Optimizer::save`] for the same variables.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |r: String| Error::run_dir(path, r);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let kind = meta.get("optimizer").map(String::as_str).unwrap_or("?");
        if kind != self.kind() {
            return Err(bad(format!(
                "optimiser state is for `{kind}`, the config uses `{}`",
                self.kind()
            )));
        }
        let steps: u64 = meta
            .get("steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no step count in the optimiser state".into()))?;
        let mut state = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let mut pair = Vec::with_capacity(2);
            for prefix in ["m", "v"] {
                let key = format!("{prefix}.{name}");
                let view = file
                    .tensor(&key)
                    .map_err(|_| bad(format!("no tensor `{key}`: state of another model?")))?;
                if view.shape() != var.dims() || view.dtype() != safetensors::Dtype::F32 {
                    return Err(bad(format!(
                        "`{key}` is {:?} {:?}, expected F32 {:?}",
                        view.dtype(),
                        view.shape(),
                        var.dims()
                    )));
                }
                let t = Tensor::from_raw_buffer(
                    view.data(),
                    DType::F32,
                    view.shape(),
                    &candle_core::Device::Cpu,
                )?;
                pair.push(t.flatten_all()?.to_vec1::<f32>()?);
            }
            let v = pair.pop().expect("two");
            let m = pair.pop().expect("two");
            state.push((m, v));
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }
}

/// Models with at least this many parameters update them in parallel.
const PARALLEL_UPDATE: usize = 1 << 15;

/// One variable's update at step `t` (1-based) with learning rate `lr`.
fn update(
    config: OptimizerConfig,
    t: i32,
    lr: f64,
    var: &Var,
    g: &Tensor,
    (s1, s2): &mut (Vec<f32>, Vec<f32>),
) -> Result<()> {
    let g = g.flatten_all()?.to_vec1::<f32>()?;
    let mut theta = var.as_detached_tensor().flatten_all()?.to_vec1::<f32>()?;
    match config {
        OptimizerConfig::Adamw {
            weight_decay,
            beta1,
            beta2,
            eps,
            ..
        } => {
            let (b1, b2) = (beta1 as f32, beta2 as f32);
            let c1 = 1.0 / (1.0 - beta1.powi(t)) as f32;
            let c2 = 1.0 / (1.0 - beta2.powi(t)) as f32;
            let decay = (1.0 - lr * weight_decay) as f32;
            let (lr, eps) = (lr as f32, eps as f32);
            for (((w, g), m), v) in theta
                .iter_mut()
                .zip(&g)
                .zip(s1.iter_mut())
                .zip(s2.iter_mut())
            {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w = *w * decay - lr * (*m * c1) / ((*v * c2).sqrt() + eps);
            }
        }
        OptimizerConfig::Sgd {
            momentum,
            weight_decay,
            nesterov,
            ..
        } => {
            let (mu, wd, lr) = (momentum as f32, weight_decay as f32, lr as f32);
            for ((w, g), buf) in theta.iter_mut().zip(&g).zip(s1.iter_mut()) {
                let g = g + wd * *w;
                let d = if mu > 0.0 {
                    *buf = mu * *buf + g;
                    if nesterov { g + mu * *buf } else { *buf }
                } else {
                    g
                };
                *w -= lr * d;
            }
        }
    }
    var.set(&Tensor::from_vec(theta, var.dims(), var.device())?)?;
    Ok(())
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut impl Grads,
    vars: &[(String, Var)],
    max_norm: f64,
) -> Result<f64> {
    let mut sq = 0.0f64;
    for (_, v) in vars {
        if let Some(g) = grads.grad(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / norm;
        for (_, v) in vars {
            if let Some(g) = grads.grad(v.as_tensor()) {
                let scaled = g.affine(scale, 0.0)?;
                grads.set_grad(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Minimise (w − 3)² from w = 0.
    fn run(config: OptimizerConfig, steps: usize) -> f32 {
        let w = Var::new(&[0.0f32], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(config, vec![("w".into(), w.clone())]).unwrap();
        for _ in 0..steps {
            let loss = (w.as_tensor() - 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, config.lr()).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // Adam's bias-corrected first step is lr · sign(g).
        let c = OptimizerConfig::Adamw {
            lr: 0.1,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert!((run(c, 1) - 0.1).abs() < 1e-5);
        assert!((run(c, 500) - 3.0).abs() < 0.05);
    }

    #[test]
    fn sgd_momentum_matches_the_closed_form() {
        // g = 2(w − 3): w1 = 0 + 0.1·6 = 0.6; buf1 = −6 → buf2 = 0.5·(−6) + 2(0.6 − 3) = −7.8,
        // w2 = 0.6 + 0.78 = 1.38.
        let c = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.5,
            weight_decay: 0.0,
            nesterov: false,
        };
        assert!((run(c, 1) - 0.6).abs() < 1e-6);
        assert!((run(c, 2) - 1.38).abs() < 1e-5);
        assert!((run(c, 200) - 3.0).abs() < 1e-3);
    }

    #[test]
    fn state_keeps_no_graph_between_steps() {
        // A graph chained through the moments would keep every step alive.
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        for c in [
            OptimizerConfig::default(),
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.1,
                nesterov: true,
            },
        ] {
            let mut o = Optimizer::new(c, vec![("w".into(), w.clone())]).unwrap();
            for _ in 0..3 {
                let g = (w.as_tensor() * w.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                o.step(&g, 0.01).unwrap();
            }
            assert!(w.as_detached_tensor().to_vec1::<f32>().unwrap()[0] < 1.0);
        }
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = OptimizerConfig::default();
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let mut a = Optimizer::new(c, vec![("w".into(), w.clone())]).unwrap();
        let g = w
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        a.step(&g, 0.01).unwrap();
        a.save(&dir.path().join("o.safetensors")).unwrap();
        let mut b = Optimizer::new(c, vec![("w".into(), w.clone())]).unwrap();
        b.load(&dir.path().join("o.safetensors")).unwrap();
        assert_eq!(b.steps(), 1);
        assert_eq!(b.state[0], a.state[0]);
        let sgd = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        };
        let mut s = Optimizer::new(sgd, vec![("w".into(), w)]).unwrap();
        assert!(
            s.load(&dir.path().join("o.safetensors"))
                .unwrap_err()
                .to_string()
                .contains("adamw")
        );
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let w = Var::new(&[3.0f32, 4.0], &Device::Cpu).unwrap();
        let vars = vec![("w".to_string(), w.clone())];
        // d/dw of sum(w²)/2 = w, norm 5.
        let mut g = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5)
            .unwrap()
            .backward()
            .unwrap();
        let before = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-5);
        let after = g.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!((after[0] - 0.6).abs() < 1e-6 && (after[1] - 0.8).abs() < 1e-6);
    }
}
