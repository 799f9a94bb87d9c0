//! Learning-rate schedules: multipliers of the optimiser's learning rate,
//! evaluated at every step.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A learning-rate schedule. `factor` multiplies the optimiser's `lr`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Always 1.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        /// Epochs between decays.
        every_epochs: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Multiply by `gamma` after every epoch.
    Exponential {
        /// Decay factor per epoch.
        gamma: f64,
    },
    /// Linear warm-up from 0 over `warmup_epochs`, then a half cosine down to
    /// `min_factor`.
    Cosine {
        /// Warm-up length in epochs (may be fractional).
        #[serde(default)]
        warmup_epochs: f64,
        /// The factor reached at the last step.
        #[serde(default)]
        min_factor: f64,
    },
    /// The one-cycle policy (Smith & Topin): cosine up from `1/div_factor` to
    /// 1 over the first `pct_start` of training, then cosine down to
    /// `1/(div_factor·final_div_factor)`.
    OneCycle {
        /// Fraction of steps spent rising.
        #[serde(default = "default_pct")]
        pct_start: f64,
        /// Initial factor is `1/div_factor`.
        #[serde(default = "default_div")]
        div_factor: f64,
        /// Final factor is `1/(div_factor·final_div_factor)`.
        #[serde(default = "default_final_div")]
        final_div_factor: f64,
    },
}

fn default_pct() -> f64 {
    0.3
}
fn default_div() -> f64 {
    25.0
}
fn default_final_div() -> f64 {
    1e4
}

/// Cosine interpolation from `a` (t = 0) to `b` (t = 1).
fn cos_interp(a: f64, b: f64, t: f64) -> f64 {
    b + (a - b) * 0.5 * (1.0 + (std::f64::consts::PI * t.clamp(0.0, 1.0)).cos())
}

impl Schedule {
    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, v: f64| {
            Err(Error::config(
                format!("train.schedule.{f}"),
                format!("out of range: {v}"),
            ))
        };
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                if every_epochs == 0 {
                    return bad("every_epochs", 0.0);
                }
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad("gamma", gamma);
                }
                Ok(())
            }
            Schedule::Exponential { gamma } => {
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return bad("gamma", gamma);
                }
                Ok(())
            }
            Schedule::Cosine {
                warmup_epochs,
                min_factor,
            } => {
                if !(warmup_epochs.is_finite() && warmup_epochs >= 0.0) {
                    return bad("warmup_epochs", warmup_epochs);
                }
                if !(0.0..=1.0).contains(&min_factor) {
                    return bad("min_factor", min_factor);
                }
                Ok(())
            }
            Schedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if !(pct_start > 0.0 && pct_start < 1.0) {
                    return bad("pct_start", pct_start);
                }
                if !(div_factor >= 1.0 && div_factor.is_finite()) {
                    return bad("div_factor", div_factor);
                }
                if !(final_div_factor >= 1.0 && final_div_factor.is_finite()) {
                    return bad("final_div_factor", final_div_factor);
                }
                Ok(())
            }
        }
    }

    /// The multiplier at 0-based `step` of `total_steps`, with
    /// `steps_per_epoch` steps per epoch.
    pub fn factor(&self, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
        let spe = steps_per_epoch.max(1);
        let total = total_steps.max(1);
        let epoch = step / spe;
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step {
                every_epochs,
                gamma,
            } => gamma.powi((epoch / every_epochs.max(1)) as i32),
            Schedule::Exponential { gamma } => gamma.powi(epoch as i32),
            Schedule::Cosine {
                warmup_epochs,
                min_factor,
            } => {
                let warm = (warmup_epochs * spe as f64).round() as usize;
                if step < warm {
                    (step + 1) as f64 / warm as f64
                } else {
                    let span = total.saturating_sub(warm).max(1);
                    let t = (step - warm) as f64 / (span.saturating_sub(1)).max(1) as f64;
                    cos_interp(1.0, min_factor, t)
                }
            }
            Schedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let start = 1.0 / div_factor;
                let end = start / final_div_factor;
                let up = ((pct_start * total as f64) as usize).max(1);
                if step < up {
                    cos_interp(start, 1.0, step as f64 / up as f64)
                } else {
                    let down = total.saturating_sub(up).max(2) - 1;
                    cos_interp(1.0, end, (step - up) as f64 / down as f64)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(s: Schedule, spe: usize, total: usize) -> Vec<f64> {
        (0..total).map(|i| s.factor(i, spe, total)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn constant_is_one() {
        assert!(curve(Schedule::Constant, 10, 50).iter().all(|&f| f == 1.0));
    }

    #[test]
    fn step_decays_every_k_epochs() {
        let c = curve(
            Schedule::Step {
                every_epochs: 2,
                gamma: 0.5,
            },
            10,
            60,
        );
        assert!(close(c[0], 1.0) && close(c[19], 1.0));
        assert!(close(c[20], 0.5) && close(c[39], 0.5));
        assert!(close(c[40], 0.25));
    }

    #[test]
    fn exponential_decays_each_epoch() {
        let c = curve(Schedule::Exponential { gamma: 0.9 }, 5, 15);
        assert!(close(c[4], 1.0) && close(c[5], 0.9) && close(c[14], 0.81));
    }

    #[test]
    fn cosine_warms_up_linearly_then_falls_to_the_floor() {
        let c = curve(
            Schedule::Cosine {
                warmup_epochs: 1.0,
                min_factor: 0.1,
            },
            10,
            111,
        );
        assert!(close(c[0], 0.1) && close(c[4], 0.5) && close(c[9], 1.0));
        assert!(close(c[10], 1.0));
        assert!(close(c[110], 0.1));
        assert!(close(c[10 + 50], 0.55)); // midpoint of the cosine: (1 + 0.1) / 2
        assert!(c[10..].windows(2).all(|w| w[1] <= w[0] + 1e-12));
    }

    #[test]
    fn one_cycle_rises_then_falls() {
        let s = Schedule::OneCycle {
            pct_start: 0.25,
            div_factor: 10.0,
            final_div_factor: 100.0,
        };
        let c = curve(s, 10, 100);
        assert!(close(c[0], 0.1));
        let peak = c.iter().cloned().fold(0.0, f64::max);
        assert!(close(peak, 1.0) && close(c[25], 1.0));
        assert!(close(c[99], 0.001));
        assert!(c[..25].windows(2).all(|w| w[1] >= w[0]));
        assert!(c[25..].windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(
            Schedule::Step {
                every_epochs: 0,
                gamma: 0.5
            }
            .validate()
            .is_err()
        );
        assert!(Schedule::Exponential { gamma: 1.5 }.validate().is_err());
        assert!(
            Schedule::Cosine {
                warmup_epochs: -1.0,
                min_factor: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Schedule::OneCycle {
                pct_start: 1.0,
                div_factor: 25.0,
                final_div_factor: 1e4
            }
            .validate()
            .is_err()
        );
    }
}
