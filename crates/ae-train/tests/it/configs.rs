//! Every shipped config parses and validates; bad values are named.

use std::path::PathBuf;

use ae_train::{DataSource, TrainConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_shipped_config_is_valid() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("configs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let cfg = TrainConfig::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
            cfg.validate().unwrap();
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} configs");
    let vae = TrainConfig::from_file(&root().join("configs/mnist-vae.toml")).unwrap();
    assert!(vae.model.is_variational());
    let dae = TrainConfig::from_file(&root().join("configs/mnist-dae.toml")).unwrap();
    assert_eq!(
        dae.data.noise,
        Some(ae_data::Noise::Gaussian { sigma: 0.5 })
    );
    let nab = TrainConfig::from_file(&root().join("configs/nab-conv1d.toml")).unwrap();
    assert!(matches!(
        nab.data.source,
        DataSource::Series { window: 128, .. }
    ));
}

fn parse(text: &str) -> Result<TrainConfig, String> {
    let cfg: TrainConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

const BASE: &str = "[model]\nkind = \"dense\"\ninput_dim = 784\nlatent_dim = 4\n[data]\nsource = { kind = \"mnist_sample\" }\n";

#[test]
fn bad_values_are_named() {
    assert!(parse(BASE).is_ok());
    let cases = [
        ("[train]\nepochs = 0\nbatch_size = 1\n", "train.epochs"),
        (
            "[train]\nepochs = 1\nbatch_size = 1\noptimizer = { kind = \"adamw\", lr = -1.0 }\n",
            "lr",
        ),
        (
            "[train]\nepochs = 1\nbatch_size = 1\noptimizer = { kind = \"sgd\", lr = 0.1, momentum = 1.5 }\n",
            "momentum",
        ),
        (
            "[train]\nepochs = 1\nbatch_size = 1\nschedule = { kind = \"step\", every_epochs = 0, gamma = 0.5 }\n",
            "every_epochs",
        ),
        ("[train]\nepochs = 1\nbatch_size = 1\nbeta = -1.0\n", "beta"),
        (
            "[train]\nepochs = 1\nbatch_size = 1\ngrad_clip = 0.0\n",
            "grad_clip",
        ),
        (
            "[train]\nepochs = 1\nbatch_size = 1\nlearning_rate = 1\n",
            "learning_rate",
        ),
    ];
    for (extra, needle) in cases {
        let e = parse(&format!("{BASE}{extra}")).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let e = parse(&BASE.replace("[data]\n", "[data]\nvalidation_fraction = 1.5\n")).unwrap_err();
    assert!(e.contains("validation_fraction"), "{e}");
    let e = parse(&BASE.replace(
        "[data]\n",
        "[data]\nnoise = { kind = \"salt_pepper\", p = 2.0 }\n",
    ))
    .unwrap_err();
    assert!(e.contains("noise.p"), "{e}");
    let e = parse(&format!("format_version = 9\n{BASE}")).unwrap_err();
    assert!(e.contains("newer"), "{e}");
}
