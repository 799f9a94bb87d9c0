//! Detection metrics for scores where higher means more anomalous.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve (ties count one half: the Mann–Whitney
/// statistic). `None` when either class is absent.
pub fn auroc(scores: &[f32], anomalous: &[bool]) -> Option<f64> {
    let n = scores.len().min(anomalous.len());
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0f64; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let pos = anomalous[..n].iter().filter(|&&l| l).count();
    let neg = n - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let rank_sum: f64 = (0..n).filter(|&k| anomalous[k]).map(|k| ranks[k]).sum();
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

/// Average precision (area under the precision–recall curve, as
/// scikit-learn's `average_precision_score`: Σ (Rₙ − Rₙ₋₁)·Pₙ over the
/// distinct score thresholds). `None` without anomalies.
pub fn average_precision(scores: &[f32], anomalous: &[bool]) -> Option<f64> {
    let n = scores.len().min(anomalous.len());
    let pos = anomalous[..n].iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < n {
        // All samples tied at this score enter together.
        let s = scores[idx[i]];
        while i < n && scores[idx[i]] == s {
            if anomalous[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// Counts and rates of a thresholded detector (anomalous when score > threshold).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Anomalies flagged.
    pub tp: usize,
    /// Normal samples flagged (false alarms).
    pub fp: usize,
    /// Normal samples passed.
    pub tn: usize,
    /// Anomalies missed.
    pub fn_: usize,
    /// tp / (tp + fp), 0 when nothing is flagged.
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// (tp + tn) / n.
    pub accuracy: f64,
}

/// The confusion matrix and rates at `threshold`.
pub fn at_threshold(scores: &[f32], anomalous: &[bool], threshold: f64) -> BinaryMetrics {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (&s, &a) in scores.iter().zip(anomalous) {
        match (f64::from(s) > threshold, a) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    BinaryMetrics {
        tp,
        fp,
        tn,
        fn_,
        precision,
        recall,
        f1,
        accuracy: ratio(tp + tn, tp + fp + tn + fn_),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auroc(&[1.0, 1.0], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        // average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.8333333333333333).abs() < 1e-12);
    }
}
