//! Checkpoints: round trips, pinned tensor names, and every kind of bad file.

use std::path::Path;

use ae_core::{Autoencoder, ConvAeConfig, DenseAeConfig, Mode, Model, ModelConfig};
use candle_core::Device;
use proptest::prelude::*;

use crate::{batch, batch_dims, max_abs_diff, model};

fn saved(cfg: ModelConfig, dir: &Path) -> Model {
    let m = model(cfg, 5);
    m.save(dir).unwrap();
    m
}

fn load_err(dir: &Path) -> String {
    match Model::load(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn save_load_reproduces_outputs_exactly(preset in prop::sample::select(ae_core::PRESETS), seed: u64) {
        let dir = tempfile::tempdir().unwrap();
        let a = model(ModelConfig::preset(preset).unwrap(), seed);
        a.save(dir.path()).unwrap();
        let b = Model::load(dir.path(), &Device::Cpu).unwrap();
        prop_assert_eq!(a.config(), b.config());
        let x = batch(&batch_dims(&a, 3), seed);
        let ya = a.forward(&x, Mode::Eval).unwrap();
        let yb = b.forward(&x, Mode::Eval).unwrap();
        prop_assert_eq!(max_abs_diff(&ya.reconstruction, &yb.reconstruction), 0.0);
        prop_assert_eq!(max_abs_diff(ya.latent.z(), yb.latent.z()), 0.0);
    }
}

#[test]
fn batch_norm_statistics_survive_a_round_trip() {
    let cfg = ModelConfig::Conv(ConvAeConfig {
        batch_norm: true,
        ..ConvAeConfig::mnist()
    });
    let a = model(cfg, 1);
    let x = batch(&[8, 1, 28, 28], 2);
    let mut rng = ae_core::rng(0);
    a.forward(&x, Mode::Train(&mut rng)).unwrap(); // updates running statistics
    let dir = tempfile::tempdir().unwrap();
    a.save(dir.path()).unwrap();
    let b = Model::load(dir.path(), &Device::Cpu).unwrap();
    let d = max_abs_diff(
        &a.forward(&x, Mode::Eval).unwrap().reconstruction,
        &b.forward(&x, Mode::Eval).unwrap().reconstruction,
    );
    assert_eq!(d, 0.0);
}

#[test]
fn tensor_names_are_pinned() {
    let m = model(ModelConfig::Conv(ConvAeConfig::mnist()), 0);
    let names: Vec<String> = m.named_vars().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "decoder.0.conv.bias",
            "decoder.0.conv.weight",
            "decoder.1.conv.bias",
            "decoder.1.conv.weight",
            "decoder.input.bias",
            "decoder.input.weight",
            "encoder.0.conv.bias",
            "encoder.0.conv.weight",
            "encoder.1.conv.bias",
            "encoder.1.conv.weight",
            "latent.proj.bias",
            "latent.proj.weight",
        ]
    );
    let m = model(
        ModelConfig::Dense(DenseAeConfig {
            batch_norm: true,
            ..DenseAeConfig::mnist_vae()
        }),
        0,
    );
    let names: Vec<String> = m.named_vars().into_iter().map(|(n, _)| n).collect();
    for n in [
        "encoder.0.linear.weight",
        "encoder.1.bn.running_var",
        "latent.mu.weight",
        "latent.logvar.bias",
        "decoder.1.linear.weight",
        "decoder.0.bn.weight",
        "decoder.output.bias",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

#[test]
fn config_json_has_a_format_version() {
    let dir = tempfile::tempdir().unwrap();
    saved(ModelConfig::Conv(ConvAeConfig::mnist()), dir.path());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(v["format_version"], ae_core::FORMAT_VERSION);
    assert_eq!(v["model"]["kind"], "conv");
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn weights_of_another_model_are_refused_with_the_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    saved(ModelConfig::Conv(ConvAeConfig::mnist()), dir.path());
    // Swap in a config of a different width: every shape around the latent differs.
    let other = ModelConfig::Conv(ConvAeConfig {
        channels: vec![16, 64],
        ..ConvAeConfig::mnist()
    });
    model(other, 0).save(&dir.path().join("other")).unwrap();
    std::fs::copy(
        dir.path().join("other/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(
        e.contains("encoder.0.conv.weight")
            && e.contains("[16, 1, 3, 3]")
            && e.contains("[32, 1, 3, 3]"),
        "{e}"
    );

    // A dense checkpoint's weights under a conv config: missing and unexpected names.
    let dir2 = tempfile::tempdir().unwrap();
    saved(ModelConfig::Conv(ConvAeConfig::mnist()), dir2.path());
    model(ModelConfig::Dense(DenseAeConfig::mnist()), 0)
        .save_weights(&dir2.path().join("model.safetensors"))
        .unwrap();
    let e = load_err(dir2.path());
    assert!(
        e.contains("missing tensors") && e.contains("unexpected tensors"),
        "{e}"
    );
}

#[test]
fn truncated_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    saved(ModelConfig::Conv(ConvAeConfig::mnist()), dir.path());
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("model.safetensors") && e.contains("safetensors"),
            "{keep}: {e}"
        );
    }
}

#[test]
fn nan_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = saved(ModelConfig::Dense(DenseAeConfig::mnist()), dir.path());
    let (_, var) = m
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == "latent.proj.bias")
        .unwrap();
    var.set(&(var.as_tensor() * f64::NAN).unwrap()).unwrap();
    m.save_weights(&dir.path().join("model.safetensors"))
        .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("latent.proj.bias") && e.contains("NaN"), "{e}");
}

#[test]
fn bad_config_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    saved(ModelConfig::Conv(ConvAeConfig::mnist()), dir.path());
    let cfg = dir.path().join("config.json");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let cases = [
        (
            original.replace("\"format_version\": 1", "\"format_version\": 99"),
            "newer",
        ),
        (
            original.replace("\"format_version\": 1,", ""),
            "format_version",
        ),
        (
            original.replace("\"height\": 28", "\"height\": 28, \"heigth\": 3"),
            "heigth",
        ),
        (
            original.replace("\"kernel_size\": 3", "\"kernel_size\": 4"),
            "kernel_size",
        ),
        (original[..original.len() / 2].to_string(), "JSON"),
    ];
    for (text, needle) in cases {
        std::fs::write(&cfg, &text).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("config.json") && e.contains(needle),
            "{needle}: {e}"
        );
    }
    std::fs::remove_file(&cfg).unwrap();
    assert!(load_err(dir.path()).contains("config.json"));
}

#[test]
fn extra_top_level_keys_are_kept_for_other_layers() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(ModelConfig::Dense(DenseAeConfig::mnist()), 0);
    let mut extra = serde_json::Map::new();
    extra.insert("train".into(), serde_json::json!({"epochs": 3}));
    m.save_with(dir.path(), extra).unwrap();
    let b = Model::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(b.config(), m.config());
}
