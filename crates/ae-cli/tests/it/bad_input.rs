//! Bad input: clear errors, non-zero exits, nothing already written lost.

use crate::{ae, fails, ok, tiny_config};

#[test]
fn unknown_keys_and_bad_values_in_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "u", "", "batchsize = 3");
    let e = fails(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]));
    assert!(e.contains("u.toml") && e.contains("batchsize"), "{e}");

    let cfg = tiny_config(tmp.path(), "lr", "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("lr = 3e-3", "lr = -0.1");
    std::fs::write(&cfg, text).unwrap();
    let e = fails(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]));
    assert!(e.contains("lr") && e.contains("-0.1"), "{e}");
    assert!(
        !tmp.path().join("r").exists(),
        "a failed config must not create the run"
    );

    let e = fails(&ae(&[
        "train",
        "--config",
        tmp.path().join("missing.toml").to_str().unwrap(),
    ]));
    assert!(e.contains("missing.toml"), "{e}");
}

#[test]
fn data_that_does_not_fit_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "s", "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("height = 28", "height = 32");
    std::fs::write(&cfg, text).unwrap();
    let e = fails(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]));
    assert!(
        e.contains("1 x 32 x 28") && e.contains("1 x 28 x 28"),
        "{e}"
    );
}

#[test]
fn a_nan_loss_stops_with_epoch_and_batch_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "nan", "output_activation = \"none\"", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("epochs = 2", "epochs = 1");
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.path().join("run");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    let best = std::fs::read(run.join("model.safetensors")).unwrap();
    // Make the second epoch diverge: an absurd learning rate.
    let c = run.join("config.json");
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("\"lr\": 0.003", "\"lr\": 1e30");
    std::fs::write(&c, text).unwrap();
    let e = fails(&ae(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]));
    assert!(
        e.contains("epoch 2") && e.contains("batch") && e.contains("epoch 1) is kept"),
        "{e}"
    );
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), best);
    assert!(run.join("last-e0001.safetensors").is_file());
    ok(&ae(&["eval", "--model", run.to_str().unwrap()]));
}

#[test]
fn resuming_with_another_model_or_overwriting_a_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "a", "", "");
    let run = tmp.path().join("run");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    let before = std::fs::read(run.join("model.safetensors")).unwrap();

    let other = tiny_config(tmp.path(), "b", "variational = true", "");
    let e = fails(&ae(&[
        "train",
        "--config",
        other.to_str().unwrap(),
        "--resume",
        run.to_str().unwrap(),
    ]));
    assert!(e.contains("different model"), "{e}");

    let e = fails(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    assert!(e.contains("already holds a run"), "{e}");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        before
    );

    // Weights of another model under this run's config.
    let other_run = tmp.path().join("other");
    ok(&ae(&[
        "train",
        "--config",
        other.to_str().unwrap(),
        "--out",
        other_run.to_str().unwrap(),
        "--quiet",
    ]));
    std::fs::copy(
        other_run.join("model.safetensors"),
        run.join("model.safetensors"),
    )
    .unwrap();
    let e = fails(&ae(&["eval", "--model", run.to_str().unwrap()]));
    assert!(
        e.contains("model.safetensors") && e.contains("unexpected tensors"),
        "{e}"
    );

    let e = fails(&ae(&[
        "eval",
        "--model",
        tmp.path().join("nothing").to_str().unwrap(),
    ]));
    assert!(e.contains("nothing"), "{e}");
}
