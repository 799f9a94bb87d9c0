//! The entropy bottleneck of a learned codec: quantisation of a spatial latent
//! and a learned factorized density over it.
//!
//! Each latent channel `c` has a density made of `K` logistic components with
//! weights `softmax(prior.logits[c])`, means `prior.means[c]` and scales
//! `exp(prior.log_scales[c])`. The probability of an integer symbol `v` is the
//! mass of its bin, `F_c(v + ½) − F_c(v − ½)`; the rate of a latent is
//! `−Σ log2` of those masses.
//!
//! Tensor names (a checkpoint contract): `prior.logits`, `prior.means`,
//! `prior.log_scales`, each `C × K`.

use candle_core::{D, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::Rng as _;

use crate::error::Result;
use crate::init::Rng;

/// The smallest bin probability used in the rate, so that one far outlier
/// costs at most ~30 bits instead of infinity.
pub const MIN_LIKELIHOOD: f64 = 1e-9;

/// The learned per-channel densities, as candle variables.
#[derive(Debug, Clone)]
pub(crate) struct FactorizedPrior {
    logits: Tensor,
    means: Tensor,
    log_scales: Tensor,
    channels: usize,
    components: usize,
}

impl FactorizedPrior {
    pub fn new(channels: usize, components: usize, vb: VarBuilder) -> Result<Self> {
        let shape = (channels, components);
        let logits = vb.get_with_hints(shape, "logits", Init::Const(0.0))?;
        let means = vb.get_with_hints(
            shape,
            "means",
            Init::Randn {
                mean: 0.0,
                stdev: 0.5,
            },
        )?;
        let log_scales = vb.get_with_hints(shape, "log_scales", Init::Const(0.0))?;
        Ok(FactorizedPrior {
            logits,
            means,
            log_scales,
            channels,
            components,
        })
    }

    /// The probability mass of the unit bin centred on each value.
    ///
    /// # Shapes
    /// `z`: `N × C × …` (any spatial rank); returns the same shape, values in
    /// `[MIN_LIKELIHOOD, 1]`.
    pub fn likelihood(&self, z: &Tensor) -> Result<Tensor> {
        let dims = z.dims().to_vec();
        let (n, k) = (dims[0], self.components);
        let zz = z.reshape((n, self.channels, (), 1))?;
        let per = |t: &Tensor| t.reshape((1, self.channels, 1, k));
        let w = per(&candle_nn::ops::softmax(&self.logits, D::Minus1)?)?;
        let mu = per(&self.means)?;
        let inv_s = per(&self.log_scales.neg()?.exp()?)?;
        let a = zz
            .affine(1.0, 0.5)?
            .broadcast_sub(&mu)?
            .broadcast_mul(&inv_s)?;
        let b = zz
            .affine(1.0, -0.5)?
            .broadcast_sub(&mu)?
            .broadcast_mul(&inv_s)?;
        // σ(a) − σ(b) loses all precision in the right tail, where both are
        // close to 1; there σ(−b) − σ(−a) is the same number computed from
        // small values. Flip the sign on the right of each component's mean.
        let flip = (&a + &b)?.detach().sign()?.neg()?;
        let sa = candle_nn::ops::sigmoid(&(&a * &flip)?)?;
        let sb = candle_nn::ops::sigmoid(&(&b * &flip)?)?;
        let mass = (sa - sb)?.abs()?;
        let lik = mass.broadcast_mul(&w)?.sum(3)?;
        Ok(lik.clamp(MIN_LIKELIHOOD, 1.0)?.reshape(dims)?)
    }

    /// Estimated bits of each sample's latent: `−Σ log2 likelihood`.
    ///
    /// # Shapes
    /// `z`: `N × C × …`; returns `N`.
    pub fn bits(&self, z: &Tensor) -> Result<Tensor> {
        let lik = self.likelihood(z)?;
        Ok(lik
            .log()?
            .flatten_from(1)?
            .sum(1)?
            .affine(-std::f64::consts::LOG2_E, 0.0)?)
    }

    /// The densities as plain numbers, for an entropy coder.
    pub fn params(&self) -> Result<PriorParams> {
        let rows = |t: &Tensor| -> Result<Vec<Vec<f64>>> {
            Ok(t.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?)
        };
        let logits = rows(&self.logits)?;
        let weights = logits
            .iter()
            .map(|l| {
                let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|v| v / s).collect()
            })
            .collect();
        let scales = rows(&self.log_scales)?
            .into_iter()
            .map(|r| r.into_iter().map(f64::exp).collect())
            .collect();
        Ok(PriorParams {
            weights,
            means: rows(&self.means)?,
            scales,
        })
    }
}

/// Adds independent uniform noise in `[−½, ½)` to every value (the training
/// stand-in for rounding).
pub(crate) fn add_uniform_noise(rng: &mut Rng, y: &Tensor) -> Result<Tensor> {
    let n = y.elem_count();
    let noise: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
    let noise = Tensor::from_vec(noise, y.dims(), y.device())?;
    Ok((y + noise)?)
}

/// The learned density of each latent channel as numbers (`f64`), read from a
/// codec's parameters: what an entropy coder builds its tables from.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorParams {
    /// Mixture weights, `C × K`, each row summing to 1.
    pub weights: Vec<Vec<f64>>,
    /// Component means, `C × K`.
    pub means: Vec<Vec<f64>>,
    /// Component scales (positive), `C × K`.
    pub scales: Vec<Vec<f64>>,
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl PriorParams {
    /// Latent channels.
    pub fn channels(&self) -> usize {
        self.weights.len()
    }

    /// Probability of the integer `v` under channel `c`'s density: the mass
    /// of `[v − ½, v + ½]`, computed without cancellation in either tail.
    pub fn pmf(&self, c: usize, v: i64) -> f64 {
        let x = v as f64;
        let mut p = 0.0;
        for ((&w, &m), &s) in self.weights[c]
            .iter()
            .zip(&self.means[c])
            .zip(&self.scales[c])
        {
            let (a, b) = ((x + 0.5 - m) / s, (x - 0.5 - m) / s);
            p += w * if a + b > 0.0 {
                sigmoid(-b) - sigmoid(-a)
            } else {
                sigmoid(a) - sigmoid(b)
            };
        }
        p
    }

    /// The integer range `[lo, hi]` outside which channel `c` has less than
    /// `tail` probability on each side (its components' logistic quantiles),
    /// at most `max_width` symbols wide, centred on the mixture's mass.
    pub fn support(&self, c: usize, tail: f64, max_width: i64) -> (i64, i64) {
        // For a logistic, P(X < m − t·s) = σ(−t) < e^(−t).
        let t = (1.0 / tail).ln();
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for ((&w, &m), &s) in self.weights[c]
            .iter()
            .zip(&self.means[c])
            .zip(&self.scales[c])
        {
            if w * 1e3 < tail {
                continue; // a component too light to matter
            }
            lo = lo.min(m - t * s);
            hi = hi.max(m + t * s);
        }
        if !lo.is_finite() || !hi.is_finite() {
            return (-1, 1);
        }
        let half = max_width / 2;
        let lo = (lo.floor() as i64).clamp(-half, half - 1);
        let hi = (hi.ceil() as i64).clamp(lo + 1, half);
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    fn prior() -> (FactorizedPrior, VarMap) {
        let map = VarMap::new();
        let vb = crate::init::seeded_var_builder(&map, 3, &Device::Cpu);
        let p = FactorizedPrior::new(2, 3, vb.pp("prior")).unwrap();
        (p, map)
    }

    #[test]
    fn bin_masses_sum_to_one_and_match_the_host_pmf() {
        let (p, _map) = prior();
        let params = p.params().unwrap();
        for c in 0..2 {
            let total: f64 = (-60..=60).map(|v| params.pmf(c, v)).sum();
            assert!((total - 1.0).abs() < 1e-9, "channel {c}: {total}");
        }
        let vals: Vec<f32> = (-5..5).map(|v| v as f32).collect();
        let mut z = vals.clone();
        z.extend(&vals);
        let z = Tensor::from_vec(z, (1, 2, 10), &Device::Cpu).unwrap();
        let lik = p.likelihood(&z).unwrap().to_vec3::<f32>().unwrap();
        for (c, row) in lik[0].iter().enumerate() {
            for (&l, v) in row.iter().zip(-5..5) {
                let host = params.pmf(c, v).max(MIN_LIKELIHOOD);
                assert!((f64::from(l) - host).abs() < 1e-5 * host.max(1e-3));
            }
        }
    }

    #[test]
    fn far_tails_keep_precision_and_support_covers_the_mass() {
        let (p, _map) = prior();
        let params = p.params().unwrap();
        // Deep in the right tail σ(a) − σ(b) would round to 0 in f64.
        let far = params.pmf(0, 30);
        assert!(far > 0.0 && far < 1e-9, "{far}");
        let (lo, hi) = params.support(0, 1e-7, 1 << 12);
        let inside: f64 = (lo..=hi).map(|v| params.pmf(0, v)).sum();
        assert!(inside > 1.0 - 1e-5, "{lo}..{hi}: {inside}");
    }

    #[test]
    fn rate_has_gradients_for_the_prior_and_the_latent() {
        let (p, map) = prior();
        let z = Var::from_tensor(&Tensor::new(&[[[0.3f32, -1.2, 2.5]; 2]], &Device::Cpu).unwrap())
            .unwrap();
        let bits = p.bits(z.as_tensor()).unwrap().sum_all().unwrap();
        let grads = bits.backward().unwrap();
        assert!(grads.get(z.as_tensor()).is_some());
        for (name, var) in map.data().lock().unwrap().iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{name}: {norm}");
        }
    }
}
