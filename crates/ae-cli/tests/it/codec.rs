//! compress / decompress, features-eval, and the VAE likelihood in eval.

use std::path::{Path, PathBuf};

use crate::{ae, fails, ok, tiny_config};

fn codec_config(dir: &Path, name: &str, seed: u64, lambda: Option<f64>) -> PathBuf {
    let lambda = lambda.map_or(String::new(), |l| format!("lambda = {l}"));
    let text = format!(
        r#"
name = "{name}"
seed = {seed}

[model]
kind = "conv"
in_channels = 1
height = 28
width = 28
channels = [8, 8]
latent = {{ kind = "spatial", channels = 4 }}
entropy_bottleneck = {{ components = 2 }}

[data]
source = {{ kind = "mnist_sample" }}
limit = 256

[train]
epochs = 2
batch_size = 32
{lambda}
optimizer = {{ kind = "adamw", lr = 3e-3 }}
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn train(cfg: &Path, run: &Path) {
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
}

fn gray_png(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(path)
        .unwrap();
}

#[test]
fn compress_and_decompress_files_archives_and_any_size() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("codec");
    train(&codec_config(tmp.path(), "c", 7, Some(0.01)), &run);
    let r = run.to_str().unwrap();
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert!(test["bpp"].as_f64().unwrap() > 0.0, "{test}");

    // The test split into one archive, then back to PNGs.
    let aea = tmp.path().join("test.aea");
    let out = ok(&ae(&[
        "compress",
        "--model",
        r,
        "--limit",
        "20",
        "--archive",
        "--json",
        "-o",
        aea.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["images"], 20);
    assert_eq!(
        v["bytes"].as_u64().unwrap(),
        std::fs::metadata(&aea).unwrap().len()
    );
    assert!(v["psnr"].as_f64().unwrap() > 5.0, "{v}");
    let dec = tmp.path().join("dec");
    ok(&ae(&[
        "decompress",
        "--model",
        r,
        aea.to_str().unwrap(),
        "-o",
        dec.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_dir(&dec).unwrap().count(), 20);

    // PNGs of any size, one file each; PSNR against the originals.
    let originals = tmp.path().join("orig");
    std::fs::create_dir_all(&originals).unwrap();
    let (a, b) = (originals.join("a.png"), originals.join("b.png"));
    gray_png(&a, 28, 28);
    gray_png(&b, 30, 17);
    let files = tmp.path().join("files");
    let out = ok(&ae(&[
        "compress",
        "--model",
        r,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        files.to_str().unwrap(),
    ]));
    assert!(out.contains("bpp") && out.contains("PSNR"), "{out}");
    let back = tmp.path().join("back");
    let out = ok(&ae(&[
        "decompress",
        "--model",
        r,
        files.join("a.aec").to_str().unwrap(),
        files.join("b.aec").to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
        "--original",
        originals.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["psnr"].as_f64().unwrap().is_finite(), "{v}");
    let img = image::open(back.join("b.png")).unwrap();
    assert_eq!((img.width(), img.height()), (30, 17));

    // Damaged, foreign and other-model files: errors naming the file.
    let bytes = std::fs::read(files.join("a.aec")).unwrap();
    let cut = tmp.path().join("cut.aec");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&ae(&[
        "decompress",
        "--model",
        r,
        cut.to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ]));
    assert!(e.contains("cut.aec") && e.contains("corrupted"), "{e}");
    let e = fails(&ae(&[
        "decompress",
        "--model",
        r,
        a.to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ]));
    assert!(
        e.contains("a.png") && e.contains("not an ae compressed file"),
        "{e}"
    );
    let other = tmp.path().join("other");
    train(&codec_config(tmp.path(), "o", 8, Some(0.01)), &other);
    let e = fails(&ae(&[
        "decompress",
        "--model",
        other.to_str().unwrap(),
        files.join("a.aec").to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ]));
    assert!(e.contains("another model"), "{e}");
    let plain = tmp.path().join("plain");
    train(&tiny_config(tmp.path(), "p", "", ""), &plain);
    let e = fails(&ae(&[
        "compress",
        "--model",
        plain.to_str().unwrap(),
        a.to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ]));
    assert!(e.contains("not a codec"), "{e}");
}

#[test]
fn a_codec_needs_its_rate_weight_and_others_refuse_one() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails(&ae(&[
        "train",
        "--config",
        codec_config(tmp.path(), "c", 1, None).to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]));
    assert!(e.contains("train.lambda"), "{e}");
    let e = fails(&ae(&[
        "train",
        "--config",
        tiny_config(tmp.path(), "p", "", "").to_str().unwrap(),
        "--lambda",
        "0.1",
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]));
    assert!(e.contains("train.lambda"), "{e}");
}

#[test]
fn features_eval_compares_codes_pca_and_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("ae");
    let cfg = tiny_config(tmp.path(), "f", "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("epochs = 2", "epochs = 10")
        .replace("limit = 256", "limit = 800");
    std::fs::write(&cfg, text).unwrap();
    train(&cfg, &run);
    let out = ok(&ae(&[
        "features-eval",
        "--model",
        run.to_str().unwrap(),
        "--epochs",
        "3",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 3);
    assert_eq!(probes[1]["dim"], 8);
    assert_eq!(probes[2]["dim"], 784);
    for p in probes {
        // Ten classes: chance is 10%; a linear probe on digits does far better.
        let acc = p["test_accuracy"].as_f64().unwrap();
        assert!((0.3..=1.0).contains(&acc), "{p}");
    }
}

/// `ae eval --json` with `k` importance samples on the first `limit` test
/// images: the estimate's JSON object.
fn importance_eval(run: &std::path::Path, k: &str, limit: &str) -> serde_json::Value {
    let out = ok(&ae(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--json",
        "--iw-samples",
        k,
        "--iw-limit",
        limit,
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["nll"].clone()
}

#[test]
fn vae_eval_estimates_the_likelihood_by_importance_sampling() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "v", "variational = true", "binarize = true");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("batch_size = 32", "batch_size = 32\nloss = \"bce\"");
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.path().join("vae");
    train(&cfg, &run);
    let nll = |k: &str| {
        let v = importance_eval(&run, k, "40");
        assert_eq!(v["images"], 40, "{v}");
        assert!(v["bound"].as_str().unwrap().contains(k));
        v["nll"].as_f64().unwrap()
    };
    let (one, many) = (nll("1"), nll("50"));
    assert!(one.is_finite() && many > 0.0);
    // More importance samples tighten the bound.
    assert!(many < one, "k=50 {many} vs k=1 {one}");
    // A VAE on grey data: no Bernoulli likelihood to estimate.
    let grey = tmp.path().join("grey");
    train(
        &tiny_config(tmp.path(), "g", "variational = true", ""),
        &grey,
    );
    let out = ok(&ae(&["eval", "--model", grey.to_str().unwrap()]));
    assert!(out.contains("not estimated"), "{out}");
}

#[test]
fn pixel_context_vae_trains_scores_and_samples_pixel_by_pixel() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "pv",
        "variational = true\npixel_context = { channels = 4, layers = 2, first_kernel = 3 }",
        "binarize = true",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("batch_size = 32", "batch_size = 32\nloss = \"bce\"");
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.path().join("pv");
    train(&cfg, &run);
    let nll = |k: &str| importance_eval(&run, k, "20")["nll"].as_f64().unwrap();
    let (one, many) = (nll("1"), nll("20"));
    // Below a coin flip per pixel (784 ln 2 = 543.4 nats): the context and
    // the latent have learned something in two epochs; more samples do not
    // loosen the bound beyond sampling noise.
    assert!(many > 0.0 && many < 784.0 * 2f64.ln(), "{many}");
    assert!(many < one + 1.0, "k=20 {many} vs k=1 {one}");
    // Samples are drawn pixel by pixel, as 0/1 values.
    let png = tmp.path().join("s.png");
    ok(&ae(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "-n",
        "4",
        "-o",
        png.to_str().unwrap(),
    ]));
    let img = image::open(&png).unwrap().to_luma8();
    assert!(img.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    // The greedy decoding of `ae decode` works from latents alone.
    let csv = tmp.path().join("z.csv");
    std::fs::write(
        &csv,
        "z0,z1,z2,z3,z4,z5,z6,z7\n0,0,0,0,0,0,0,0\n1,-1,0.5,0,0,0,0,2\n",
    )
    .unwrap();
    let grid = tmp.path().join("d.png");
    ok(&ae(&[
        "decode",
        "--model",
        run.to_str().unwrap(),
        csv.to_str().unwrap(),
        "-o",
        grid.to_str().unwrap(),
    ]));
    assert!(grid.exists());
}
