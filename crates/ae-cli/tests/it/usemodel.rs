//! encode, decode, reconstruct, denoise, sample, interpolate.

use crate::{ae, fails, ok, tiny_config};

fn digit_png(dir: &std::path::Path, i: usize) -> std::path::PathBuf {
    let d = ae_data::bundled_mnist_sample().unwrap();
    let px: Vec<u8> = d
        .sample(i)
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let p = dir.join(format!("digit-{i}.png"));
    image::GrayImage::from_raw(28, 28, px)
        .unwrap()
        .save(&p)
        .unwrap();
    p
}

#[test]
fn a_vae_run_encodes_decodes_reconstructs_samples_and_interpolates() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "v", "variational = true", "");
    let run = tmp.path().join("vae");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    let r = run.to_str().unwrap();

    let latents = tmp.path().join("z.csv");
    ok(&ae(&[
        "encode",
        "--model",
        r,
        "-o",
        latents.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&latents).unwrap();
    assert!(
        text.starts_with("index,key,label,z0,z1,z2,z3,z4,z5,z6,z7\n"),
        "{}",
        &text[..60]
    );
    assert_eq!(text.lines().count(), 201);

    let grid = tmp.path().join("decoded.png");
    ok(&ae(&[
        "decode",
        "--model",
        r,
        latents.to_str().unwrap(),
        "-o",
        grid.to_str().unwrap(),
    ]));
    assert!(image::open(&grid).unwrap().width() >= 8 * 28);
    let dir = tmp.path().join("decoded");
    ok(&ae(&[
        "decode",
        "--model",
        r,
        latents.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 200);

    let (a, b) = (digit_png(tmp.path(), 0), digit_png(tmp.path(), 5));
    let out = tmp.path().join("recon");
    ok(&ae(&[
        "reconstruct",
        "--model",
        r,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    let img = image::open(out.join("digit-0.png")).unwrap();
    assert_eq!((img.width(), img.height()), (28, 28));
    let g = tmp.path().join("recon.png");
    ok(&ae(&[
        "denoise",
        "--model",
        r,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        g.to_str().unwrap(),
        "--grid",
    ]));
    assert!(g.is_file());
    let t = tmp.path().join("t");
    ok(&ae(&[
        "transform",
        "--model",
        r,
        a.to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
    ]));
    assert!(t.join("digit-0.png").is_file());

    let plot = tmp.path().join("latent.png");
    let out = ok(&ae(&[
        "reduce",
        "--model",
        r,
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["latent_dim"], 8);
    assert_eq!(v["pca_components"], 8);
    assert!(
        v["ae_sse_per_sample"].as_f64().unwrap() > 0.0
            && v["pca_sse_per_sample"].as_f64().unwrap() > 0.0
    );
    assert!(image::open(&plot).unwrap().width() > 100);

    let s = tmp.path().join("samples.png");
    ok(&ae(&[
        "sample",
        "--model",
        r,
        "-n",
        "16",
        "-o",
        s.to_str().unwrap(),
        "--seed",
        "3",
    ]));
    let strip = tmp.path().join("strip.png");
    ok(&ae(&[
        "interpolate",
        "--model",
        r,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--steps",
        "7",
        "-o",
        strip.to_str().unwrap(),
    ]));
    assert!(image::open(&strip).unwrap().width() >= 7 * 28 * 3);
}

#[test]
fn bad_input_for_model_use() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "p", "", "");
    let run = tmp.path().join("ae");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    let r = run.to_str().unwrap();
    let e = fails(&ae(&[
        "sample",
        "--model",
        r,
        "-o",
        tmp.path().join("s.png").to_str().unwrap(),
    ]));
    assert!(e.contains("VAE"), "{e}");
    let z = tmp.path().join("z.csv");
    std::fs::write(&z, "index,z0,z1\n0,1,2\n").unwrap();
    let e = fails(&ae(&[
        "decode",
        "--model",
        r,
        z.to_str().unwrap(),
        "-o",
        tmp.path().join("d.png").to_str().unwrap(),
    ]));
    assert!(
        e.contains("z.csv") && e.contains("2 latent columns") && e.contains('8'),
        "{e}"
    );
    std::fs::write(tmp.path().join("bad.png"), b"not a png").unwrap();
    let e = fails(&ae(&[
        "reconstruct",
        "--model",
        r,
        tmp.path().join("bad.png").to_str().unwrap(),
        "-o",
        tmp.path().join("o").to_str().unwrap(),
    ]));
    assert!(e.contains("bad.png"), "{e}");
}

#[test]
fn denoise_eval_reports_noisy_filters_and_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "n",
        "",
        "noise = { kind = \"gaussian\", sigma = 0.5 }",
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
    let out = ok(&ae(&[
        "denoise-eval",
        "--model",
        run.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    for row in r {
        let noisy = row["noisy_psnr"].as_f64().unwrap();
        // Classical filters clean Gaussian and impulse noise on digits.
        assert!(row["median3_psnr"].as_f64().unwrap() > noisy, "{row}");
        assert!(row["ae_psnr"].as_f64().unwrap().is_finite());
    }
}
