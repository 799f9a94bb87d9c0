//! Thresholds fitted on anomaly scores: a method, its parameters, the fitted
//! value and statistics of the scores it was fitted on. Saved as
//! `threshold.json` beside a model, so a model directory is a complete
//! detector.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::at_threshold;
use crate::score::ScoreKind;

/// How a threshold is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdMethod {
    /// A given value.
    Manual {
        /// The threshold.
        value: f64,
    },
    /// The `q`-th percentile (0–100) of the normal scores.
    Percentile {
        /// Percentile of normal scores that pass.
        q: f64,
    },
    /// The fraction of training data assumed anomalous (as PyOD's
    /// `contamination`): the `1 − rate` quantile of the scores.
    Contamination {
        /// In (0, 0.5].
        rate: f64,
    },
    /// mean + k·σ of the normal scores.
    MeanStd {
        /// Number of standard deviations.
        k: f64,
    },
    /// median + k·MAD (median absolute deviation, scaled by 1.4826 to match
    /// σ for Gaussian scores).
    MedianMad {
        /// Number of scaled MADs.
        k: f64,
    },
    /// Tukey's fence: Q3 + k·IQR.
    Iqr {
        /// Number of interquartile ranges (1.5 is Tukey's).
        k: f64,
    },
    /// Otsu's method on a histogram of the scores: the cut that maximises the
    /// between-class variance.
    Otsu {
        /// Histogram bins.
        bins: usize,
    },
    /// The threshold that maximises F1 on a labelled validation set (as
    /// anomalib's F1-adaptive threshold).
    F1Adaptive,
}

impl ThresholdMethod {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, v: String| Err(Error::config(format!("threshold.{f}"), v));
        match *self {
            ThresholdMethod::Manual { value } if !value.is_finite() => {
                bad("value", format!("must be finite, found {value}"))
            }
            ThresholdMethod::Percentile { q } if !(0.0..=100.0).contains(&q) => {
                bad("q", format!("must be in [0, 100], found {q}"))
            }
            ThresholdMethod::Contamination { rate } if !(rate > 0.0 && rate <= 0.5) => bad(
                "rate",
                format!("contamination must be in (0, 0.5], found {rate}"),
            ),
            ThresholdMethod::MeanStd { k }
            | ThresholdMethod::MedianMad { k }
            | ThresholdMethod::Iqr { k }
                if !k.is_finite() =>
            {
                bad("k", format!("must be finite, found {k}"))
            }
            ThresholdMethod::Otsu { bins } if bins < 2 => {
                bad("bins", format!("must be at least 2, found {bins}"))
            }
            _ => Ok(()),
        }
    }

    /// The method's name as in `threshold.json`.
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdMethod::Manual { .. } => "manual",
            ThresholdMethod::Percentile { .. } => "percentile",
            ThresholdMethod::Contamination { .. } => "contamination",
            ThresholdMethod::MeanStd { .. } => "mean_std",
            ThresholdMethod::MedianMad { .. } => "median_mad",
            ThresholdMethod::Iqr { .. } => "iqr",
            ThresholdMethod::Otsu { .. } => "otsu",
            ThresholdMethod::F1Adaptive => "f1_adaptive",
        }
    }

    /// Fits the threshold. `scores` are normal scores for every method but
    /// F1-adaptive, which needs `labels` (true = anomalous) for them.
    pub fn fit(&self, scores: &[f32], labels: Option<&[bool]>) -> Result<f64> {
        self.validate()?;
        let finite: Vec<f64> = scores
            .iter()
            .map(|&s| f64::from(s))
            .filter(|s| s.is_finite())
            .collect();
        if finite.len() != scores.len() {
            return Err(Error::config(
                "scores",
                format!(
                    "{} of {} scores are NaN or infinite",
                    scores.len() - finite.len(),
                    scores.len()
                ),
            ));
        }
        if finite.is_empty() {
            return Err(Error::config("scores", "no scores to fit a threshold on"));
        }
        let mut sorted = finite.clone();
        sorted.sort_by(f64::total_cmp);
        let st = ScoreStats::of(&sorted);
        Ok(match *self {
            ThresholdMethod::Manual { value } => value,
            ThresholdMethod::Percentile { q } => quantile(&sorted, q / 100.0),
            ThresholdMethod::Contamination { rate } => quantile(&sorted, 1.0 - rate),
            ThresholdMethod::MeanStd { k } => st.mean + k * st.std,
            ThresholdMethod::MedianMad { k } => st.median + k * 1.4826 * st.mad,
            ThresholdMethod::Iqr { k } => st.q3 + k * (st.q3 - st.q1),
            ThresholdMethod::Otsu { bins } => otsu(&sorted, bins),
            ThresholdMethod::F1Adaptive => {
                let labels = labels.ok_or_else(|| {
                    Error::config("threshold.method", "f1_adaptive needs labelled scores")
                })?;
                if labels.len() != scores.len() {
                    return Err(Error::config(
                        "labels",
                        format!("{} labels for {} scores", labels.len(), scores.len()),
                    ));
                }
                let pos = labels.iter().filter(|&&l| l).count();
                if pos == 0 || pos == labels.len() {
                    return Err(Error::config(
                        "labels",
                        format!(
                            "f1_adaptive needs normal and anomalous samples, found {pos} anomalous of {}",
                            labels.len()
                        ),
                    ));
                }
                // Candidates: just below each distinct score (flag it and above).
                let mut best = (f64::NEG_INFINITY, sorted[0] - 1.0);
                let mut prev = f64::NEG_INFINITY;
                for &s in &sorted {
                    if s == prev {
                        continue;
                    }
                    let t = if prev.is_finite() {
                        (prev + s) / 2.0
                    } else {
                        s - 1e-6_f64.max(s.abs() * 1e-6)
                    };
                    let f1 = at_threshold(scores, labels, t).f1;
                    if f1 > best.0 {
                        best = (f1, t);
                    }
                    prev = s;
                }
                best.1
            }
        })
    }
}

/// Linear-interpolated quantile of sorted values, `p` in [0, 1].
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn otsu(sorted: &[f64], bins: usize) -> f64 {
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    if hi <= lo {
        return hi;
    }
    let width = (hi - lo) / bins as f64;
    let mut hist = vec![0f64; bins];
    for &s in sorted {
        hist[(((s - lo) / width) as usize).min(bins - 1)] += 1.0;
    }
    let n = sorted.len() as f64;
    let centre = |i: usize| lo + (i as f64 + 0.5) * width;
    let total: f64 = hist.iter().enumerate().map(|(i, &c)| c * centre(i)).sum();
    let (mut w0, mut sum0, mut best, mut cut) = (0.0, 0.0, -1.0, 1);
    for (i, &count) in hist.iter().enumerate().take(bins - 1) {
        w0 += count;
        sum0 += count * centre(i);
        let w1 = n - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (total - sum0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            cut = i + 1;
        }
    }
    lo + cut as f64 * width
}

/// Statistics of the scores a threshold was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreStats {
    /// Number of scores.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Largest.
    pub max: f64,
    /// Median absolute deviation (unscaled).
    pub mad: f64,
}

impl ScoreStats {
    /// Statistics of sorted, finite, non-empty scores.
    pub fn of(sorted: &[f64]) -> Self {
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
        let median = quantile(sorted, 0.5);
        let mut dev: Vec<f64> = sorted.iter().map(|s| (s - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        ScoreStats {
            n,
            mean,
            std: var.sqrt(),
            min: sorted[0],
            q1: quantile(sorted, 0.25),
            median,
            q3: quantile(sorted, 0.75),
            max: sorted[n - 1],
            mad: quantile(&dev, 0.5),
        }
    }
}

/// A fitted threshold: `threshold.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The method and its parameters.
    pub method: ThresholdMethod,
    /// The fitted value: scores above it are anomalous.
    pub value: f64,
    /// The score the threshold applies to.
    pub score: ScoreKind,
    /// Statistics of the scores it was fitted on.
    pub stats: ScoreStats,
    /// Digest of the model's weights (refuses another model's threshold).
    pub model_digest: String,
}

/// The file name of a saved threshold.
pub const THRESHOLD_FILE: &str = "threshold.json";

impl Threshold {
    /// Fits `method` on `scores` (with `labels` for F1-adaptive).
    pub fn fit(
        method: ThresholdMethod,
        score: ScoreKind,
        scores: &[f32],
        labels: Option<&[bool]>,
        model_digest: String,
    ) -> Result<Self> {
        let value = method.fit(scores, labels)?;
        let mut sorted: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        sorted.sort_by(f64::total_cmp);
        Ok(Threshold {
            method,
            value,
            score,
            stats: ScoreStats::of(&sorted),
            model_digest,
        })
    }

    /// Anomalous when `score > value`.
    pub fn is_anomalous(&self, score: f32) -> bool {
        f64::from(score) > self.value
    }

    /// A score mapped to [0, 1], 0.5 at the threshold: a logistic of the
    /// distance to it in units of the fitted scores' standard deviation.
    pub fn probability(&self, score: f32) -> f64 {
        let scale = if self.stats.std > 0.0 {
            self.stats.std
        } else {
            1.0
        };
        1.0 / (1.0 + (-(f64::from(score) - self.value) / scale).exp())
    }

    /// Writes `dir/threshold.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialisable");
        ae_core::checkpoint::write_atomic(&dir.join(THRESHOLD_FILE), text.as_bytes())?;
        Ok(())
    }

    /// Reads `dir/threshold.json` and checks it belongs to the model with
    /// `model_digest`.
    pub fn load(dir: &Path, model_digest: &str) -> Result<Self> {
        let path = dir.join(THRESHOLD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let t: Threshold = serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("invalid threshold: {e}")))?;
        t.method
            .validate()
            .map_err(|e| Error::file(&path, e.to_string()))?;
        if t.model_digest != model_digest {
            return Err(Error::file(
                &path,
                format!(
                    "fitted for the model with digest {}, but the model here has digest {model_digest}: fit it again with `ae threshold fit`",
                    t.model_digest
                ),
            ));
        }
        Ok(t)
    }
}
