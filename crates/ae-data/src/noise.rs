//! Noise injection for denoising autoencoders: the corrupted input is given to
//! the model and the clean sample is the target.

use candle_core::Tensor;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::Rng;
use crate::error::{Error, Result};

/// A corruption, with its strength. Every kind clips to the data range and
/// is the identity at strength 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Noise {
    /// Additive Gaussian noise `x + σ·ε`.
    Gaussian {
        /// Standard deviation σ.
        sigma: f32,
    },
    /// Each value becomes the range's minimum or maximum (equally likely)
    /// with probability `p`.
    SaltPepper {
        /// Probability of corrupting a value.
        p: f32,
    },
    /// Each position (all channels together) is set to the range's minimum
    /// with probability `p`.
    MaskPixels {
        /// Probability of masking a position.
        p: f32,
    },
    /// `count` random rectangles (intervals for 1-D samples) with sides up to
    /// `max_side` are set to the range's minimum in every channel.
    MaskRects {
        /// Number of rectangles per sample.
        count: usize,
        /// Largest side, in pixels.
        max_side: usize,
    },
    /// Multiplicative noise `x + x·σ·ε`.
    Speckle {
        /// Standard deviation σ of the multiplier.
        sigma: f32,
    },
}

impl Noise {
    /// Checks the strength is usable.
    pub fn validate(&self) -> Result<()> {
        let prob = |name: &str, p: f32| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(Error::config(
                    name,
                    format!("must be a probability in [0, 1], found {p}"),
                ))
            }
        };
        let sd = |name: &str, s: f32| {
            if s.is_finite() && s >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    name,
                    format!("must be finite and >= 0, found {s}"),
                ))
            }
        };
        match *self {
            Noise::Gaussian { sigma } => sd("noise.sigma", sigma),
            Noise::Speckle { sigma } => sd("noise.sigma", sigma),
            Noise::SaltPepper { p } | Noise::MaskPixels { p } => prob("noise.p", p),
            Noise::MaskRects { .. } => Ok(()),
        }
    }

    /// Corrupts whole samples in place. `sample_dims` is the per-sample shape
    /// (`[C, H, W]`, `[C, L]` or `[D]`); values are clipped to `range`.
    pub fn apply(
        &self,
        values: &mut [f32],
        sample_dims: &[usize],
        range: (f32, f32),
        rng: &mut Rng,
    ) -> Result<()> {
        self.validate()?;
        let (lo, hi) = range;
        let per: usize = sample_dims.iter().product();
        if per == 0 || !values.len().is_multiple_of(per) {
            return Err(Error::config(
                "noise",
                format!(
                    "{} values are not whole samples of {sample_dims:?}",
                    values.len()
                ),
            ));
        }
        // Channels and the positions they share (masks act on all channels).
        let (channels, plane) = match sample_dims {
            [_] => (1, per),
            [c, rest @ ..] => (*c, rest.iter().product()),
            [] => unreachable!("per > 0"),
        };
        match *self {
            Noise::Gaussian { sigma } => {
                if sigma > 0.0 {
                    for v in values.iter_mut() {
                        let e: f32 = StandardNormal.sample(rng);
                        *v = (*v + sigma * e).clamp(lo, hi);
                    }
                }
            }
            Noise::Speckle { sigma } => {
                if sigma > 0.0 {
                    for v in values.iter_mut() {
                        let e: f32 = StandardNormal.sample(rng);
                        *v = (*v + *v * sigma * e).clamp(lo, hi);
                    }
                }
            }
            Noise::SaltPepper { p } => {
                if p > 0.0 {
                    for v in values.iter_mut() {
                        // Two draws per value whatever happens, so the same
                        // seed corrupts a superset of positions at a higher p.
                        let (u, salt) = (rng.random::<f32>(), rng.random::<bool>());
                        if u < p {
                            *v = if salt { hi } else { lo };
                        }
                    }
                }
            }
            Noise::MaskPixels { p } => {
                if p > 0.0 {
                    for sample in values.chunks_mut(per) {
                        for pos in 0..plane {
                            if rng.random::<f32>() < p {
                                for c in 0..channels {
                                    sample[c * plane + pos] = lo;
                                }
                            }
                        }
                    }
                }
            }
            Noise::MaskRects { count, max_side } => {
                if count > 0 && max_side > 0 {
                    let (h, w) = match sample_dims {
                        [_, h, w] => (*h, *w),
                        _ => (1, plane),
                    };
                    for sample in values.chunks_mut(per) {
                        // One child generator per sample: more rectangles add
                        // to the same ones, and later samples do not shift.
                        let mut rng = crate::rng(rng.random());
                        for _ in 0..count {
                            let rh = rng.random_range(1..=max_side.min(h));
                            let rw = rng.random_range(1..=max_side.min(w));
                            let y0 = rng.random_range(0..=h - rh);
                            let x0 = rng.random_range(0..=w - rw);
                            for c in 0..channels {
                                for y in y0..y0 + rh {
                                    let row = c * plane + y * w;
                                    sample[row + x0..row + x0 + rw].fill(lo);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A corrupted copy of a batch tensor `N × sample_dims…` (f32).
    pub fn corrupt(&self, x: &Tensor, range: (f32, f32), rng: &mut Rng) -> Result<Tensor> {
        let mut v = x.flatten_all()?.to_vec1::<f32>()?;
        self.apply(&mut v, &x.dims()[1..], range, rng)?;
        Ok(Tensor::from_vec(v, x.dims(), x.device())?)
    }

    /// The same kind with strength `s` (σ, p, or the number of rectangles).
    pub fn with_strength(&self, s: f32) -> Noise {
        match *self {
            Noise::Gaussian { .. } => Noise::Gaussian { sigma: s },
            Noise::Speckle { .. } => Noise::Speckle { sigma: s },
            Noise::SaltPepper { .. } => Noise::SaltPepper { p: s },
            Noise::MaskPixels { .. } => Noise::MaskPixels { p: s },
            Noise::MaskRects { max_side, .. } => Noise::MaskRects {
                count: s.round() as usize,
                max_side,
            },
        }
    }
}

/// Stochastic binarisation: each value `v` in `[0, 1]` becomes 1 with
/// probability `v`, else 0 (values outside are clamped first).
pub fn binarize(values: &mut [f32], rng: &mut Rng) {
    use rand::Rng as _;
    for v in values {
        let u: f32 = rng.random();
        *v = if u < v.clamp(0.0, 1.0) { 1.0 } else { 0.0 };
    }
}

/// [`binarize`] on a batch tensor (f32), returning a new tensor.
pub fn binarize_tensor(x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    binarize(&mut v, rng);
    Ok(Tensor::from_vec(v, x.dims(), x.device())?)
}

#[cfg(test)]
mod binarize_tests {
    #[test]
    fn binarisation_keeps_the_mean_and_gives_zeros_and_ones() {
        let mut rng = crate::rng(3);
        let mut v = vec![0.3f32; 20_000];
        super::binarize(&mut v, &mut rng);
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 0.3).abs() < 0.02, "{mean}");
    }
}
