//! A saved model as a detector.

use ae_anomaly::{Detector, ScoreKind, Scorer, ThresholdMethod};
use ae_core::{ConvAeConfig, Model, ModelConfig};
use candle_core::Device;

fn saved_model(dir: &std::path::Path, variational: bool) {
    let cfg = ConvAeConfig {
        channels: vec![4, 8],
        variational,
        ..ConvAeConfig::mnist()
    };
    Model::new(ModelConfig::Conv(cfg), 0, &Device::Cpu)
        .unwrap()
        .save(dir)
        .unwrap();
}

#[test]
fn fit_score_predict_and_proba() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path(), false);
    let data = ae_data::bundled_mnist_sample().unwrap().take(100);
    for kind in [ScoreKind::Mse, ScoreKind::L1, ScoreKind::Ssim] {
        let mut d = Detector::load(
            dir.path(),
            Scorer {
                kind,
                ..Scorer::default()
            },
            &Device::Cpu,
        )
        .unwrap();
        assert!(d.predict(&data).is_err(), "predicting needs a threshold");
        let t = d
            .fit(ThresholdMethod::Contamination { rate: 0.1 }, &data, None)
            .unwrap()
            .clone();
        let scores = d.score(&data).unwrap();
        assert_eq!(scores.len(), 100);
        let flagged = d.predict(&data).unwrap().iter().filter(|&&p| p).count();
        assert!((8..=12).contains(&flagged), "{kind:?}: {flagged} flagged");
        let p = d.predict_proba(&data).unwrap();
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        // Opened again, the detector keeps its threshold and score kind.
        let again = Detector::open(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(again.threshold.as_ref(), Some(&t));
        assert_eq!(again.scorer.kind, kind);
        assert_eq!(again.predict(&data).unwrap(), d.predict(&data).unwrap());
        std::fs::remove_file(dir.path().join("threshold.json")).unwrap();
    }
}

#[test]
fn vae_scores_with_the_negative_elbo() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path(), true);
    let data = ae_data::bundled_mnist_sample().unwrap().take(20);
    let scorer = Scorer {
        kind: ScoreKind::NegElbo,
        samples: 4,
        ..Scorer::default()
    };
    let d = Detector::load(dir.path(), scorer, &Device::Cpu).unwrap();
    let s = d.score(&data).unwrap();
    assert!(s.iter().all(|v| v.is_finite() && *v > 0.0));
    // Deterministic under its seed.
    assert_eq!(s, d.score(&data).unwrap());
    let plain = tempfile::tempdir().unwrap();
    saved_model(plain.path(), false);
    let d = Detector::load(plain.path(), scorer, &Device::Cpu).unwrap();
    assert!(
        d.score(&data)
            .unwrap_err()
            .to_string()
            .contains("variational")
    );
}

#[test]
fn data_of_another_shape_and_a_foreign_threshold_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    saved_model(dir.path(), false);
    let d = Detector::load(dir.path(), Scorer::default(), &Device::Cpu).unwrap();
    let wrong = ae_data::Dataset::new("vectors", vec![10], vec![0.0; 30], None).unwrap();
    let e = d.score(&wrong).unwrap_err().to_string();
    assert!(e.contains("[1, 28, 28]") && e.contains("[10]"), "{e}");
    // A threshold fitted for another model's weights.
    let other = tempfile::tempdir().unwrap();
    saved_model(other.path(), false);
    let mut od = Detector::load(other.path(), Scorer::default(), &Device::Cpu).unwrap();
    let data = ae_data::bundled_mnist_sample().unwrap().take(10);
    od.fit(ThresholdMethod::MeanStd { k: 3.0 }, &data, None)
        .unwrap();
    // Same seed, same weights: retrain-free "other model" needs different weights.
    Model::new(
        ModelConfig::Conv(ConvAeConfig {
            channels: vec![4, 8],
            ..ConvAeConfig::mnist()
        }),
        1,
        &Device::Cpu,
    )
    .unwrap()
    .save(dir.path())
    .unwrap();
    std::fs::copy(
        other.path().join("threshold.json"),
        dir.path().join("threshold.json"),
    )
    .unwrap();
    let e = Detector::open(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("threshold.json") && e.contains("digest"), "{e}");
}
