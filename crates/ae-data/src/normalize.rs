//! Normalisation fitted on training data and stored with a model.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// How to normalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// Leave values as they are.
    #[default]
    None,
    /// Min–max to [0, 1].
    MinMax,
    /// Zero mean, unit standard deviation.
    Standardize,
}

/// A fitted normalisation `x' = (x − offset) · scale`, either one pair for all
/// values or one per feature (per position within a sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalizer {
    /// The method it was fitted with.
    pub kind: NormKind,
    /// Subtracted first; one value, or one per feature.
    pub offset: Vec<f32>,
    /// Then multiplied; one value, or one per feature.
    pub scale: Vec<f32>,
}

impl Normalizer {
    /// The identity.
    pub fn identity() -> Self {
        Normalizer {
            kind: NormKind::None,
            offset: vec![0.0],
            scale: vec![1.0],
        }
    }

    /// Fits statistics on `data` (all values together, or per feature when
    /// `per_feature`). Constant features get scale 1.
    pub fn fit(kind: NormKind, data: &Dataset, per_feature: bool) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::config("normalize", "cannot fit on an empty dataset"));
        }
        let groups = if per_feature { data.per_sample() } else { 1 };
        let mut offset = Vec::with_capacity(groups);
        let mut scale = Vec::with_capacity(groups);
        for g in 0..groups {
            let values = data
                .data()
                .iter()
                .enumerate()
                .filter(|(i, _)| groups == 1 || i % groups == g)
                .map(|(_, v)| f64::from(*v));
            let (o, s) = match kind {
                NormKind::None => (0.0, 1.0),
                NormKind::MinMax => {
                    let (lo, hi) = values
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v), hi.max(v))
                        });
                    (lo, if hi > lo { 1.0 / (hi - lo) } else { 1.0 })
                }
                NormKind::Standardize => {
                    let (n, sum, sq) =
                        values.fold((0.0, 0.0, 0.0), |(n, s, q), v| (n + 1.0, s + v, q + v * v));
                    let mean = sum / n;
                    let var = (sq / n - mean * mean).max(0.0);
                    (mean, if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 })
                }
            };
            offset.push(o as f32);
            scale.push(s as f32);
        }
        Ok(Normalizer {
            kind,
            offset,
            scale,
        })
    }

    fn check(&self, per_sample: usize) -> Result<()> {
        let n = self.offset.len();
        if n != self.scale.len() || !(n == 1 || n == per_sample) {
            return Err(Error::config(
                "normalizer",
                format!(
                    "{} offsets and {} scales do not fit samples of {per_sample} values",
                    n,
                    self.scale.len()
                ),
            ));
        }
        Ok(())
    }

    /// Normalises `values` (whole samples of `per_sample` values) in place.
    pub fn apply(&self, values: &mut [f32], per_sample: usize) -> Result<()> {
        self.check(per_sample)?;
        let n = self.offset.len();
        for (i, v) in values.iter_mut().enumerate() {
            let g = if n == 1 { 0 } else { i % per_sample };
            *v = (*v - self.offset[g]) * self.scale[g];
        }
        Ok(())
    }

    /// Undoes [`Normalizer::apply`] in place.
    pub fn invert(&self, values: &mut [f32], per_sample: usize) -> Result<()> {
        self.check(per_sample)?;
        let n = self.offset.len();
        for (i, v) in values.iter_mut().enumerate() {
            let g = if n == 1 { 0 } else { i % per_sample };
            *v = *v / self.scale[g] + self.offset[g];
        }
        Ok(())
    }

    /// Normalises a whole dataset in place.
    pub fn apply_to(&self, data: &mut Dataset) -> Result<()> {
        let p = data.per_sample();
        self.apply(data.data_mut(), p)
    }
}
