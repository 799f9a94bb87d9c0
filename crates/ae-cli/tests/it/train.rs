//! Training, evaluation and inspection of real runs.

use crate::{ae, metrics, ok, tiny_config};

#[test]
fn train_writes_a_complete_run_and_eval_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "t", "", "");
    let run = tmp.path().join("run");
    let out = ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["epochs"], 2);
    assert!(report["test"]["psnr"].as_f64().unwrap() > 5.0);
    for f in [
        "config.json",
        "model.safetensors",
        "state.json",
        "metrics.jsonl",
        "normalizer.json",
        "test.json",
        "loss.png",
        "reconstructions.png",
        "last-e0002.safetensors",
        "optimizer-e0002.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // The previous epoch's resume files are cleaned up, and no temporary files remain.
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("e0001") || n.ends_with(".tmp")),
        "{names:?}"
    );
    let m = metrics(&run);
    assert_eq!(m.len(), 2);
    for key in [
        "train_loss",
        "val_loss",
        "val_psnr",
        "lr",
        "seconds",
        "images_per_second",
    ] {
        assert!(m[1][key].is_number(), "{key}");
    }
    // The run directory is all that is needed to reload the model.
    let model = ae_core::Model::load(&run, &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.config().kind(), "conv");
    let eval: serde_json::Value =
        serde_json::from_str(ok(&ae(&["eval", "--model", run.to_str().unwrap(), "--json"])).trim())
            .unwrap();
    assert!(
        (eval["psnr"].as_f64().unwrap() - report["test"]["psnr"].as_f64().unwrap()).abs() < 1e-6
    );
    assert!(eval["mse"].as_f64().unwrap() > 0.0);
    let inspect = ok(&ae(&["inspect", "--model", run.to_str().unwrap()]));
    assert!(inspect.contains("parameters"), "{inspect}");
    let png = image::open(run.join("reconstructions.png")).unwrap();
    assert!(png.width() > 8 * 28 && png.height() > 2 * 28);
}

#[test]
fn the_same_seed_gives_the_same_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "d", "batch_norm = true", "");
    let runs: Vec<_> = ["a", "b"].iter().map(|n| tmp.path().join(n)).collect();
    for r in &runs {
        ok(&ae(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            r.to_str().unwrap(),
            "--quiet",
        ]));
    }
    let (a, b) = (metrics(&runs[0]), metrics(&runs[1]));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["train_loss"], y["train_loss"]);
        assert_eq!(x["val_loss"], y["val_loss"]);
    }
}

#[test]
fn vae_denoising_and_paired_modes_train() {
    let tmp = tempfile::tempdir().unwrap();
    // VAE: samples.png and a negative ELBO.
    let cfg = tiny_config(tmp.path(), "v", "variational = true", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[train]\n",
        "[train]\nloss = \"bce\"\nkl_warmup_epochs = 1\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.path().join("vae");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(run.join("samples.png").is_file());
    let eval: serde_json::Value =
        serde_json::from_str(ok(&ae(&["eval", "--model", run.to_str().unwrap(), "--json"])).trim())
            .unwrap();
    assert!(eval["neg_elbo"].as_f64().unwrap() > 0.0);
    assert!(metrics(&run)[0]["kl"].is_number());

    // Denoising: a third row (clean targets) in the picture.
    let cfg = tiny_config(
        tmp.path(),
        "n",
        "",
        "noise = { kind = \"salt_pepper\", p = 0.2 }",
    );
    let run = tmp.path().join("dae");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    let png = image::open(run.join("reconstructions.png")).unwrap();
    assert!(png.height() >= 3 * 28 * 3);

    // Paired: the bundled digits as both input and target source.
    let cfg = tiny_config(tmp.path(), "p", "", "target = { kind = \"mnist_sample\" }");
    let run = tmp.path().join("paired");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
}

#[test]
fn dense_and_conv1d_models_train_on_their_data() {
    let tmp = tempfile::tempdir().unwrap();
    // Dense model on the images, flattened.
    let dense = tmp.path().join("dense.toml");
    std::fs::write(
        &dense,
        "name = \"dense\"\n[model]\nkind = \"dense\"\ninput_dim = 784\nhidden = [64]\nlatent_dim = 8\n[data]\nsource = { kind = \"mnist_sample\" }\nlimit = 200\n[train]\nepochs = 1\nbatch_size = 32\n",
    )
    .unwrap();
    ok(&ae(&[
        "train",
        "--config",
        dense.to_str().unwrap(),
        "--out",
        tmp.path().join("d").to_str().unwrap(),
        "--quiet",
    ]));

    // Conv1d on windows of a sine series with one labelled anomaly.
    let csv = tmp.path().join("s.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = (i as f32 * 0.2).sin() + if (300..310).contains(&i) { 3.0 } else { 0.0 };
        text.push_str(&format!("2020-01-01 {:02}:{:02}:00,{v}\n", i / 60, i % 60));
    }
    std::fs::write(&csv, text).unwrap();
    let cfg = tmp.path().join("c1.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"c1\"\n[model]\nkind = \"conv1d\"\nin_channels = 1\nlength = 32\nchannels = [8, 8]\nlatent = {{ kind = \"dense\", dim = 4 }}\noutput_activation = \"none\"\n[data]\nsource = {{ kind = \"series\", path = \"{}\", window = 32, stride = 4 }}\nnormalize = \"standardize\"\n[train]\nepochs = 2\nbatch_size = 16\n",
            csv.display()
        ),
    )
    .unwrap();
    let run = tmp.path().join("c1");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(run.join("reconstructions.png").is_file());
    let norm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("normalizer.json")).unwrap())
            .unwrap();
    assert_eq!(norm["kind"], "standardize");
}

#[test]
fn presets_lists_every_preset() {
    let out = ok(&ae(&["presets"]));
    for p in ae_core::PRESETS {
        assert!(out.contains(p), "{p}");
    }
    assert!(out.contains("241441"));
}
