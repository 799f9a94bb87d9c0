//! A model directory as a detector, in the style of PyOD: fit on normal data,
//! then `score`, `predict`, `predict_proba`.

use std::path::{Path, PathBuf};

use ae_core::Model;
use ae_data::Dataset;
use candle_core::Device;

use crate::error::{Error, Result};
use crate::score::{Scorer, model_digest};
use crate::threshold::{THRESHOLD_FILE, Threshold, ThresholdMethod};

/// A trained model, how it scores, and (once fitted) its threshold.
pub struct Detector {
    /// The model.
    pub model: Model,
    /// How samples are scored.
    pub scorer: Scorer,
    /// The fitted threshold, if any.
    pub threshold: Option<Threshold>,
    dir: PathBuf,
    digest: String,
}

impl Detector {
    /// Loads the model in `dir` with `scorer`, and its `threshold.json` when
    /// present and fitted on the same kind of score.
    pub fn load(dir: &Path, scorer: Scorer, device: &Device) -> Result<Self> {
        let model = Model::load(dir, device)?;
        let digest = model_digest(&dir.join(ae_core::WEIGHTS_FILE))?;
        let threshold = if dir.join(THRESHOLD_FILE).exists() {
            Some(Threshold::load(dir, &digest)?)
        } else {
            None
        };
        let threshold = threshold.filter(|t| t.score == scorer.kind);
        Ok(Detector {
            model,
            scorer,
            threshold,
            dir: dir.to_path_buf(),
            digest,
        })
    }

    /// Opens a complete detector: the model and its `threshold.json`, scoring
    /// as the threshold was fitted.
    pub fn open(dir: &Path, device: &Device) -> Result<Self> {
        let model = Model::load(dir, device)?;
        let digest = model_digest(&dir.join(ae_core::WEIGHTS_FILE))?;
        let t = Threshold::load(dir, &digest)?;
        let scorer = Scorer {
            kind: t.score,
            ..Scorer::default()
        };
        Ok(Detector {
            model,
            scorer,
            threshold: Some(t),
            dir: dir.to_path_buf(),
            digest,
        })
    }

    /// The digest of the model's weights.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Fits a threshold on the scores of `normal` data (for F1-adaptive, on
    /// `normal` with `labels`, true = anomalous) and saves `threshold.json`.
    pub fn fit(
        &mut self,
        method: ThresholdMethod,
        data: &Dataset,
        labels: Option<&[bool]>,
    ) -> Result<&Threshold> {
        let scores = self.scorer.score(&self.model, data)?;
        let t = Threshold::fit(
            method,
            self.scorer.kind,
            &scores,
            labels,
            self.digest.clone(),
        )?;
        t.save(&self.dir)?;
        Ok(self.threshold.insert(t))
    }

    /// One anomaly score per sample.
    pub fn score(&self, data: &Dataset) -> Result<Vec<f32>> {
        self.scorer.score(&self.model, data)
    }

    fn fitted(&self) -> Result<&Threshold> {
        self.threshold.as_ref().ok_or_else(|| {
            Error::config(
                "threshold",
                format!(
                    "no {THRESHOLD_FILE} in {}: run `ae threshold fit` first",
                    self.dir.display()
                ),
            )
        })
    }

    /// `true` for samples scored above the threshold.
    pub fn predict(&self, data: &Dataset) -> Result<Vec<bool>> {
        let t = self.fitted()?;
        Ok(self
            .score(data)?
            .into_iter()
            .map(|s| t.is_anomalous(s))
            .collect())
    }

    /// Scores mapped to [0, 1], 0.5 at the threshold.
    pub fn predict_proba(&self, data: &Dataset) -> Result<Vec<f64>> {
        let t = self.fitted()?;
        Ok(self
            .score(data)?
            .into_iter()
            .map(|s| t.probability(s))
            .collect())
    }
}
