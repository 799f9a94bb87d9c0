//! Data preparation and the loop through the library API.

use ae_core::{ConvAeConfig, ModelConfig};
use ae_train::{DataConfig, DataSource, TrainConfig, TrainOptions, TrainSettings, prepare};

fn data(classes: Option<Vec<u32>>) -> DataConfig {
    toml::from_str::<DataConfig>("source = { kind = \"mnist_sample\" }")
        .map(|d| DataConfig { classes, ..d })
        .unwrap()
}

#[test]
fn splits_are_disjoint_seeded_and_one_class_training_keeps_a_full_test_set() {
    let model = ModelConfig::Conv(ConvAeConfig::mnist());
    let p = prepare(&data(None), &model, 1, None).unwrap();
    assert_eq!(p.train.len() + p.val.len() + p.test.len(), 2000);
    assert_eq!(p.test.len(), 200);
    let q = prepare(&data(None), &model, 1, None).unwrap();
    assert_eq!(p.train.input, q.train.input);
    let ones = prepare(&data(Some(vec![1])), &model, 1, None).unwrap();
    assert!(ones.train.input.labels().unwrap().iter().all(|&l| l == 1));
    assert!(ones.val.input.labels().unwrap().iter().all(|&l| l == 1));
    let test_classes: std::collections::BTreeSet<u32> =
        ones.test.input.labels().unwrap().iter().copied().collect();
    assert_eq!(test_classes.len(), 10, "the test split keeps every class");
}

#[test]
fn data_that_does_not_fit_is_an_error() {
    let model = ModelConfig::Conv(ConvAeConfig {
        height: 32,
        ..ConvAeConfig::mnist()
    });
    let e = prepare(&data(None), &model, 1, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 x 32 x 28") && e.contains("1 x 28 x 28"),
        "{e}"
    );
    let e = prepare(
        &data(Some(vec![11])),
        &ModelConfig::Conv(ConvAeConfig::mnist()),
        1,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("classes"), "{e}");
}

#[test]
fn sgd_with_a_step_schedule_learns_and_early_stopping_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
        name = "sgd"
        [model]
        kind = "dense"
        input_dim = 784
        hidden = [32]
        latent_dim = 8
        [data]
        source = { kind = "mnist_sample" }
        limit = 300
        [train]
        epochs = 6
        batch_size = 25
        optimizer = { kind = "sgd", lr = 0.5, momentum = 0.9, nesterov = true }
        schedule = { kind = "step", every_epochs = 2, gamma = 0.5 }
        early_stopping = { patience = 1, min_delta = 1.0 }
        grad_clip = 5.0
    "#;
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    let opts = TrainOptions {
        out: Some(tmp.path().join("run")),
        quiet: true,
        ..TrainOptions::default()
    };
    let report = ae_train::train(cfg, &opts).unwrap();
    // min_delta = 1.0 can never be met: the run stops after 1 + patience epochs.
    assert!(report.stopped_early);
    assert_eq!(report.epochs, 2);
    let m = ae_train::read_metrics(&tmp.path().join("run/metrics.jsonl")).unwrap();
    assert!(m[1].train_loss < m[0].train_loss, "{m:?}");
    assert!((m[0].lr - 0.5).abs() < 1e-12);
    let _ = TrainSettings::default();
    let _ = DataSource::MnistSample;
}
