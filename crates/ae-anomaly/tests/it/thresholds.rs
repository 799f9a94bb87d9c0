//! Threshold methods on known scores.

use ae_anomaly::{ScoreKind, Threshold, ThresholdMethod};

fn normal() -> Vec<f32> {
    (1..=100).map(|i| i as f32).collect() // 1..100
}

#[test]
fn each_method_gives_the_textbook_value() {
    let s = normal();
    let fit = |m: ThresholdMethod| m.fit(&s, None).unwrap();
    assert_eq!(fit(ThresholdMethod::Manual { value: 7.5 }), 7.5);
    assert!((fit(ThresholdMethod::Percentile { q: 95.0 }) - 95.05).abs() < 1e-9);
    assert!((fit(ThresholdMethod::Contamination { rate: 0.1 }) - 90.1).abs() < 1e-9);
    // mean 50.5, population σ = sqrt((100² − 1) / 12) = 28.866
    assert!(
        (fit(ThresholdMethod::MeanStd { k: 2.0 }) - (50.5 + 2.0 * 28.86607004772212)).abs() < 1e-9
    );
    // median 50.5, MAD 25
    assert!(
        (fit(ThresholdMethod::MedianMad { k: 3.0 }) - (50.5 + 3.0 * 1.4826 * 25.0)).abs() < 1e-9
    );
    // Q1 25.75, Q3 75.25
    assert!((fit(ThresholdMethod::Iqr { k: 1.5 }) - (75.25 + 1.5 * 49.5)).abs() < 1e-9);
}

#[test]
fn otsu_splits_two_clusters() {
    let mut s: Vec<f32> = (0..50).map(|i| 1.0 + i as f32 * 0.01).collect();
    s.extend((0..50).map(|i| 9.0 + i as f32 * 0.01));
    let t = ThresholdMethod::Otsu { bins: 64 }.fit(&s, None).unwrap();
    assert!(t > 1.5 && t < 9.0, "{t}");
}

#[test]
fn f1_adaptive_finds_the_separating_threshold() {
    let s = [0.1f32, 0.2, 0.3, 0.35, 0.9, 1.0, 0.25];
    let l = [false, false, false, false, true, true, false];
    let t = ThresholdMethod::F1Adaptive.fit(&s, Some(&l)).unwrap();
    assert!(t > 0.35 && t < 0.9, "{t}");
    let e = ThresholdMethod::F1Adaptive
        .fit(&s, Some(&[false; 7]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("normal and anomalous"), "{e}");
    assert!(ThresholdMethod::F1Adaptive.fit(&s, None).is_err());
}

#[test]
fn bad_parameters_and_scores_are_errors() {
    for rate in [0.0, 0.6, -0.1] {
        let e = ThresholdMethod::Contamination { rate }
            .fit(&normal(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(0, 0.5]"), "{e}");
    }
    assert!(
        ThresholdMethod::Percentile { q: 101.0 }
            .fit(&normal(), None)
            .is_err()
    );
    assert!(
        ThresholdMethod::Otsu { bins: 1 }
            .fit(&normal(), None)
            .is_err()
    );
    let e = ThresholdMethod::MeanStd { k: 3.0 }
        .fit(&[1.0, f32::NAN], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    assert!(ThresholdMethod::MeanStd { k: 3.0 }.fit(&[], None).is_err());
}

#[test]
fn a_threshold_round_trips_and_refuses_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let t = Threshold::fit(
        ThresholdMethod::Percentile { q: 99.0 },
        ScoreKind::Mse,
        &normal(),
        None,
        "abc".into(),
    )
    .unwrap();
    t.save(dir.path()).unwrap();
    assert_eq!(Threshold::load(dir.path(), "abc").unwrap(), t);
    let e = Threshold::load(dir.path(), "def").unwrap_err().to_string();
    assert!(
        e.contains("threshold.json") && e.contains("abc") && e.contains("def"),
        "{e}"
    );
    assert!((t.probability(t.value as f32) - 0.5).abs() < 1e-6);
    assert!(t.probability(1000.0) > 0.99 && t.probability(-1000.0) < 0.01);
    std::fs::write(
        dir.path().join("threshold.json"),
        "{\"method\": {\"name\": \"percentile\", \"q\": 150}}",
    )
    .unwrap();
    assert!(Threshold::load(dir.path(), "abc").is_err());
}
