//! Metrics against values computed independently with scikit-learn 1.9.1:
//!
//! ```python
//! import numpy as np
//! from sklearn.metrics import roc_auc_score, average_precision_score, f1_score, precision_score, recall_score, confusion_matrix
//! rng = np.random.default_rng(7)
//! scores = np.round(rng.normal(size=40) + np.r_[np.zeros(25), np.ones(15) * 1.2], 3)
//! labels = np.r_[np.zeros(25, int), np.ones(15, int)]
//! roc_auc_score(labels, scores)            # 0.848
//! average_precision_score(labels, scores)  # 0.789981931122282
//! pred = (scores > 0.5).astype(int)
//! f1_score(labels, pred), precision_score(labels, pred), recall_score(labels, pred)
//! # 0.7407407407407407 0.8333333333333334 0.6666666666666666
//! confusion_matrix(labels, pred).ravel()   # tn fp fn tp = 23 2 5 10
//! ```

use ae_anomaly::metrics::{at_threshold, auroc, average_precision};
use proptest::prelude::*;

const SCORES: [f32; 40] = [
    0.001, 0.299, -0.274, -0.891, -0.455, -0.992, 0.060, 1.340, -0.492, -0.620, 0.490, 0.357,
    0.105, -0.930, -0.029, 0.695, -1.344, -0.458, -1.901, -1.290, -1.842, -0.235, -1.267, 0.271,
    0.157, 1.013, -1.317, 0.661, 1.151, 1.313, -0.330, 0.722, 0.221, 0.391, 2.261, 0.392, 1.167,
    2.084, 0.616, 1.088,
];

fn labels() -> Vec<bool> {
    (0..40).map(|i| i >= 25).collect()
}

#[test]
fn match_scikit_learn() {
    assert!((auroc(&SCORES, &labels()).unwrap() - 0.848).abs() < 1e-12);
    assert!((average_precision(&SCORES, &labels()).unwrap() - 0.789981931122282).abs() < 1e-12);
    let m = at_threshold(&SCORES, &labels(), 0.5);
    assert_eq!((m.tn, m.fp, m.fn_, m.tp), (23, 2, 5, 10));
    assert!((m.f1 - 0.7407407407407407).abs() < 1e-12);
    assert!((m.precision - 0.8333333333333334).abs() < 1e-12);
    assert!((m.recall - 0.6666666666666666).abs() < 1e-12);
}

proptest! {
    #[test]
    fn auroc_is_a_probability_and_flips_with_the_scores(scores in prop::collection::vec(-5.0f32..5.0, 2..60), seed: u64) {
        let labels: Vec<bool> = (0..scores.len()).map(|i| (seed >> (i % 64)) & 1 == 1).collect();
        if let Some(a) = auroc(&scores, &labels) {
            prop_assert!((0.0..=1.0).contains(&a));
            let neg: Vec<f32> = scores.iter().map(|s| -s).collect();
            let b = auroc(&neg, &labels).unwrap();
            prop_assert!((a + b - 1.0).abs() < 1e-9);
            let ap = average_precision(&scores, &labels).unwrap();
            prop_assert!((0.0..=1.0).contains(&ap));
        }
    }
}
