//! `cargo xtask bench`: benchmarks that print figures (never timed tests).
//!
//! `perf`: ae against the PyTorch reference (`../shared/bench/torch_reference.py`)
//! on the mnist-conv model, interleaved in one run, as ratios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{Args, build_ae, project_root};

/// `figure → value` from the `JSON {...}` lines a run prints.
fn figures(stdout: &str) -> BTreeMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("JSON "))
        .filter_map(|j| {
            let v: serde_json::Value = serde_json::from_str(j).ok()?;
            Some((v["figure"].as_str()?.to_string(), v["value"].as_f64()?))
        })
        .collect()
}

fn run(cmd: &mut Command) -> Result<BTreeMap<String, f64>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(figures(&String::from_utf8_lossy(&out.stdout)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Runs the reference script in `python`, adding its peak RSS.
fn torch(
    python: &Path,
    script: &Path,
    mode: &str,
    steps: usize,
    tuned: bool,
) -> Result<BTreeMap<String, f64>> {
    let wrapper = "import json, resource, runpy, sys\n\
                   script = sys.argv[1]\n\
                   sys.argv = [script] + sys.argv[2:]\n\
                   runpy.run_path(script, run_name='__main__')\n\
                   rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n\
                   print('JSON ' + json.dumps({'figure': 'peak_rss', 'value': rss, 'unit': 'MiB'}))\n";
    let mut cmd = Command::new(python);
    cmd.args(["-c", wrapper]).arg(script).args([
        mode,
        "--threads",
        "2",
        "--steps",
        &steps.to_string(),
    ]);
    if tuned {
        cmd.env(
            "GLIBC_TUNABLES",
            "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295",
        );
    }
    run(&mut cmd)
}

fn has_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run_bench(mut args: Args) -> Result<()> {
    let json = args.flag("--json");
    let python = args.value("--python")?;
    let rounds: usize = args
        .value("--rounds")?
        .map_or(Ok(3), |v| v.parse())
        .context("--rounds")?;
    let steps: usize = args
        .value("--steps")?
        .map_or(Ok(30), |v| v.parse())
        .context("--steps")?;
    let data_dir = args.value("--data-dir")?;
    let epochs: Option<usize> = args
        .value("--epochs")?
        .map(|v| v.parse())
        .transpose()
        .context("--epochs")?;
    let dataset = args.value("--dataset")?;
    let classes = args.value("--classes")?;
    let lambdas = args.value("--lambdas")?;
    let limit: usize = args
        .value("--limit")?
        .map_or(Ok(10_000), |v| v.parse())
        .context("--limit")?;
    let reuse = args.flag("--reuse");
    let model = args.value("--model")?;
    let iw_samples: usize = args
        .value("--iw-samples")?
        .map_or(Ok(1000), |v| v.parse())
        .context("--iw-samples")?;
    let iw_limit: Option<usize> = args
        .value("--iw-limit")?
        .map(|v| v.parse())
        .transpose()
        .context("--iw-limit")?;
    let rest = args.finish()?;
    match rest.first().map(String::as_str) {
        Some("perf") => perf(json, python, rounds, steps),
        Some("quality-recon") => quality_recon(json, data_dir, epochs),
        Some("oneclass") => oneclass(
            json,
            data_dir,
            epochs,
            dataset.as_deref().unwrap_or("mnist"),
            classes.as_deref(),
        ),
        Some("nab") => nab(json),
        Some("denoise") => denoise(json, data_dir, epochs),
        Some("vae") => vae(json, data_dir, epochs, model, iw_samples, iw_limit),
        Some("features") => features(json, data_dir, epochs, model),
        Some("compress") => crate::compress::bench(crate::compress::Options {
            json,
            data_dir: mnist_dir(data_dir)?,
            epochs,
            lambdas: lambdas
                .as_deref()
                .unwrap_or("0.03,0.012,0.005,0.002")
                .split(',')
                .map(|v| v.trim().parse::<f64>().context("--lambdas"))
                .collect::<Result<_>>()?,
            limit,
            reuse,
        }),
        Some(other) => {
            bail!(
                "unknown benchmark `{other}` (known: perf, quality-recon, oneclass, nab, denoise, features, vae, compress)"
            )
        }
        None => bail!(
            "name a benchmark: perf, quality-recon, oneclass, nab, denoise, features, vae or compress"
        ),
    }
}

/// The full MNIST directory (`--data-dir`, `$AE_DATA_DIR/mnist` or `data/mnist`).
fn mnist_dir(data_dir: Option<String>) -> Result<PathBuf> {
    idx_dir(data_dir, "mnist")
}

/// The directory of an IDX dataset (`--data-dir`, `$AE_DATA_DIR/<name>` or `data/<name>`).
fn idx_dir(data_dir: Option<String>, name: &str) -> Result<PathBuf> {
    let dir =
        data_dir
            .map(PathBuf::from)
            .unwrap_or_else(|| match std::env::var_os("AE_DATA_DIR") {
                Some(d) => PathBuf::from(d).join(name),
                None => project_root().join("data").join(name),
            });
    if !crate::has_idx(&dir) {
        bail!(
            "this benchmark needs {name}, not found in {}: run `cargo xtask download {name}` (or pass --data-dir)",
            dir.display()
        );
    }
    Ok(dir)
}

/// Deep SVDD per class on MNIST (Ruff et al., ICML 2018, Table 1).
const DEEP_SVDD_MNIST: [f64; 10] = [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5];

/// One-class detection: for each class, train on it alone, score the whole
/// test set (the other classes are anomalies), report AUROC.
fn oneclass(
    json: bool,
    data_dir: Option<String>,
    epochs: Option<usize>,
    dataset: &str,
    classes: Option<&str>,
) -> Result<()> {
    let source = match dataset {
        "mnist" => "mnist",
        "fashion-mnist" => "fashion_mnist",
        other => bail!("unknown dataset `{other}`: mnist or fashion-mnist"),
    };
    let dir = idx_dir(data_dir, dataset)?;
    let classes: Vec<u32> = match classes {
        Some(c) => c
            .split(',')
            .map(|v| v.trim().parse().with_context(|| format!("bad class `{v}`")))
            .collect::<Result<_>>()?,
        None => (0..10).collect(),
    };
    let ae = build_ae()?;
    let root = project_root();
    let template = std::fs::read_to_string(root.join("configs/mnist-oneclass.toml"))
        .context("reading configs/mnist-oneclass.toml")?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = root
        .join("runs")
        .join(format!("bench-oneclass-{dataset}-{stamp}"));
    std::fs::create_dir_all(&base)?;
    let started = std::time::Instant::now();
    let mut per_class = serde_json::Map::new();
    for &c in &classes {
        let cfg = template
            .replace(
                "source = { kind = \"mnist\" }",
                &format!("source = {{ kind = \"{source}\" }}"),
            )
            .replace("classes = [0]", &format!("classes = [{c}]"));
        let cfg_path = base.join(format!("class-{c}.toml"));
        std::fs::write(&cfg_path, cfg)?;
        let run = base.join(format!("class-{c}"));
        let t = std::time::Instant::now();
        let mut train = Command::new(&ae);
        train
            .current_dir(&root)
            .args(["train", "--quiet", "--json", "--config"])
            .arg(&cfg_path)
            .arg("--data-dir")
            .arg(&dir)
            .arg("--out")
            .arg(&run);
        if let Some(e) = epochs {
            train.args(["--epochs", &e.to_string()]);
        }
        json_of(&mut train)?;
        let score = json_of(
            Command::new(&ae)
                .args(["score", "--json", "--score", "mse", "--data-dir"])
                .arg(&dir)
                .arg("--model")
                .arg(&run),
        )?;
        let auroc = 100.0 * score["auroc"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "oneclass: class {c}: AUROC {auroc:.1} ({:.0} s)",
            t.elapsed().as_secs_f64()
        );
        per_class.insert(c.to_string(), serde_json::json!(auroc));
    }
    let values: Vec<f64> = per_class.values().filter_map(|v| v.as_f64()).collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"dataset": dataset, "per_class": per_class, "mean_auroc": mean, "seconds": secs, "runs": base})
        );
    } else {
        let mnist = dataset == "mnist";
        println!(
            "one-class AUROC (%) on the {dataset} test set, each class trained alone ({secs:.0} s in all)"
        );
        println!(
            "{:<6} {:>8} {:>12}",
            "class",
            "ae",
            if mnist { "Deep SVDD" } else { "" }
        );
        for &c in &classes {
            let ours = per_class[&c.to_string()].as_f64().unwrap_or(f64::NAN);
            let theirs = if mnist {
                format!("{:.1}", DEEP_SVDD_MNIST[c as usize % 10])
            } else {
                String::new()
            };
            println!("{c:<6} {ours:>8.1} {theirs:>12}");
        }
        println!(
            "{:<6} {mean:>8.1} {:>12}",
            "mean",
            if mnist { "94.8" } else { "" }
        );
        if mnist {
            println!(
                "published means: DCAE 89.7, Deep SVDD 94.8 (Ruff et al. 2018); target: >= 96"
            );
        }
        println!("runs: {}", base.display());
    }
    Ok(())
}

pub(crate) fn json_of(cmd: &mut Command) -> Result<serde_json::Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("no JSON output")?;
    Ok(serde_json::from_str(line)?)
}

/// The mnist() conv AE (latent 32) with the longer recipe quality-recon trains.
const QUALITY_CONFIG: &str = "configs/mnist-ae-long.toml";

/// Test-set squared error per image of the mnist() conv AE (latent 32) on
/// full MNIST, beside PCA at 30 and 32 components (fitted on the same training
/// images) and the published anchors.
fn quality_recon(json: bool, data_dir: Option<String>, epochs: Option<usize>) -> Result<()> {
    let ae = build_ae()?;
    let dir = mnist_dir(data_dir)?;
    let root = project_root();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_dir = root
        .join("runs")
        .join(format!("bench-quality-recon-{stamp}"));
    let started = std::time::Instant::now();
    let mut train = Command::new(&ae);
    train
        .current_dir(&root)
        .args([
            "train",
            "--config",
            QUALITY_CONFIG,
            "--json",
            "--quiet",
            "--data-dir",
        ])
        .arg(&dir)
        .arg("--out")
        .arg(&run_dir);
    if let Some(e) = epochs {
        train.args(["--epochs", &e.to_string()]);
    }
    eprintln!(
        "quality-recon: training {QUALITY_CONFIG} on {} into {}",
        dir.display(),
        run_dir.display()
    );
    let report = json_of(&mut train)?;
    let train_secs = started.elapsed().as_secs_f64();
    let pca = json_of(
        Command::new(&ae)
            .current_dir(&root)
            .args([
                "pca",
                "--config",
                QUALITY_CONFIG,
                "--components",
                "30,32",
                "--json",
                "--data-dir",
            ])
            .arg(&dir),
    )?;
    let ae_sse = report["test"]["sse_per_sample"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let pca_at = |k: u64| {
        pca["pca"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["components"] == k))
            .and_then(|r| r["sse_per_sample"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let (pca30, pca32) = (pca_at(30), pca_at(32));
    const PUBLISHED_PCA30: f64 = 13.87;
    const PUBLISHED_DEEP_AE: f64 = 3.00;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ae_sse_per_image": ae_sse, "ae_psnr": report["test"]["psnr"], "epochs": report["epochs"],
                "train_seconds": train_secs, "pca30_sse_per_image": pca30, "pca32_sse_per_image": pca32,
                "published_pca30": PUBLISHED_PCA30, "published_deep_ae30": PUBLISHED_DEEP_AE,
                "pca30_vs_published": pca30 / PUBLISHED_PCA30 - 1.0, "target_met": ae_sse <= 2.5,
                "run_dir": run_dir,
            })
        );
    } else {
        println!(
            "MNIST test set, squared error per image (sum over 784 pixels in [0, 1], mean over 10,000 images)"
        );
        println!("{:<44} {:>10}", "model", "error");
        println!(
            "{:<44} {:>10.3}",
            format!(
                "ae conv AE, latent 32 ({} epochs, {:.0} s)",
                report["epochs"], train_secs
            ),
            ae_sse
        );
        println!("{:<44} {:>10.3}", "PCA, 32 components", pca32);
        println!("{:<44} {:>10.3}", "PCA, 30 components", pca30);
        println!(
            "{:<44} {:>10.3}",
            "PCA, 30 (Hinton & Salakhutdinov 2006)", PUBLISHED_PCA30
        );
        println!(
            "{:<44} {:>10.3}",
            "deep autoencoder, 30 (same paper)", PUBLISHED_DEEP_AE
        );
        println!(
            "target ae <= 2.5: {}; PCA-30 within {:+.2}% of the published value",
            if ae_sse <= 2.5 { "met" } else { "NOT met" },
            100.0 * (pca30 / PUBLISHED_PCA30 - 1.0)
        );
        println!("run directory: {}", run_dir.display());
    }
    Ok(())
}

fn perf(json: bool, python: Option<String>, rounds: usize, steps: usize) -> Result<()> {
    let ae = build_ae()?;
    let script = project_root().join("../shared/bench/torch_reference.py");
    let python = PathBuf::from(python.unwrap_or_else(|| "python3".into()));
    let torch_ok = script.is_file() && has_torch(&python);
    if !torch_ok {
        eprintln!(
            "bench perf: PyTorch reference skipped ({}): pass --python PATH to a Python with torch",
            if script.is_file() {
                format!("{} cannot import torch", python.display())
            } else {
                format!("{} not found", script.display())
            }
        );
    }
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut push = |prefix: &str, figs: BTreeMap<String, f64>| {
        for (k, v) in figs {
            samples.entry(format!("{prefix}.{k}")).or_default().push(v);
        }
    };
    for round in 0..rounds {
        eprintln!("bench perf: round {}/{rounds}", round + 1);
        for mode in ["train", "infer"] {
            push(
                &format!("ae.{mode}"),
                run(Command::new(&ae).args([
                    "bench",
                    "--mode",
                    mode,
                    "--steps",
                    &steps.to_string(),
                ]))?,
            );
            if torch_ok {
                push(
                    &format!("torch.{mode}"),
                    torch(&python, &script, mode, steps, false)?,
                );
                push(
                    &format!("torch_tuned.{mode}"),
                    torch(&python, &script, mode, steps, true)?,
                );
            }
        }
    }
    let m: BTreeMap<String, f64> = samples.into_iter().map(|(k, v)| (k, median(v))).collect();
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let ae_fig = [
        ("train_img_s", get("ae.train.train_images_per_second")),
        ("infer_img_s", get("ae.infer.infer_images_per_second")),
        ("latency_ms", get("ae.infer.infer_latency_b1_ms")),
        ("train_peak_rss_mib", get("ae.train.peak_rss")),
    ];
    let best = |a: &str, b: &str, higher: bool| {
        let (x, y) = (get(a), get(b));
        if higher { x.max(y) } else { x.min(y) }
    };
    let torch_fig = [
        (
            "train_img_s",
            best(
                "torch.train.train_images_per_second",
                "torch_tuned.train.train_images_per_second",
                true,
            ),
        ),
        (
            "infer_img_s",
            best(
                "torch.infer.infer_images_per_second",
                "torch_tuned.infer.infer_images_per_second",
                true,
            ),
        ),
        (
            "latency_ms",
            best(
                "torch.infer.infer_latency_b1_ms",
                "torch_tuned.infer.infer_latency_b1_ms",
                false,
            ),
        ),
        (
            "train_peak_rss_mib",
            best("torch.train.peak_rss", "torch_tuned.train.peak_rss", false),
        ),
    ];
    let ratio = |i: usize| ae_fig[i].1 / torch_fig[i].1;
    if json {
        let obj = |f: &[(&str, f64)]| {
            f.iter()
                .map(|(k, v)| format!("\"{k}\":{}", num(*v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{{\"train_ratio\":{},\"infer_ratio\":{},\"latency_ratio\":{},\"rss_ratio\":{},\"rounds\":{rounds},\"steps\":{steps},\"ae\":{{{}}},\"pytorch\":{{{}}}}}",
            num(ratio(0)),
            num(ratio(1)),
            num(ratio(2)),
            num(ratio(3)),
            obj(&ae_fig),
            obj(&torch_fig)
        );
    } else {
        println!(
            "mnist-conv, batch 128, 2 threads; medians of {rounds} interleaved runs of {steps} steps each"
        );
        println!("PyTorch: the better of plain and tuned-allocator runs");
        println!(
            "{:<24} {:>12} {:>12} {:>10}",
            "figure", "ae", "PyTorch", "ae/PyTorch"
        );
        let names = [
            "training, images/s",
            "inference b128, img/s",
            "latency b1, ms",
            "peak RSS training, MiB",
        ];
        for (i, name) in names.iter().enumerate() {
            // Milliseconds need three decimals; counts and MiB one.
            let prec = if i == 2 { 3 } else { 1 };
            println!(
                "{name:<24} {:>12.prec$} {:>12.prec$} {:>10.2}",
                ae_fig[i].1,
                torch_fig[i].1,
                ratio(i)
            );
        }
    }
    Ok(())
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

/// The signal case: a 1-D conv AE on windows of NAB's machine-temperature
/// series (configs/nab-conv1d.toml), a mean + 3σ threshold fitted on
/// validation windows, and the test period (the last 20% of the series, which
/// holds one labelled failure window) scored at that threshold.
fn nab(json: bool) -> Result<()> {
    let root = project_root();
    if !root.join("data/nab/labels/combined_windows.json").is_file() {
        bail!(
            "this benchmark needs NAB in data/nab: run `cargo xtask download nab` (or `--from NAB-data-labels-*.tar.gz`)"
        );
    }
    let ae = build_ae()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run = root.join("runs").join(format!("bench-nab-{stamp}"));
    json_of(
        Command::new(&ae)
            .current_dir(&root)
            .args([
                "train",
                "--quiet",
                "--json",
                "--config",
                "configs/nab-conv1d.toml",
                "--out",
            ])
            .arg(&run),
    )?;
    let fit = Command::new(&ae)
        .current_dir(&root)
        .args([
            "threshold",
            "fit",
            "--method",
            "mean_std",
            "--k",
            "3",
            "--model",
        ])
        .arg(&run)
        .output()?;
    if !fit.status.success() {
        bail!(
            "threshold fit failed: {}",
            String::from_utf8_lossy(&fit.stderr)
        );
    }
    let s = json_of(
        Command::new(&ae)
            .current_dir(&root)
            .args(["score", "--json", "--model"])
            .arg(&run),
    )?;
    let c = &s["confusion"];
    let (tp, fp, fn_) = (
        c["tp"].as_u64().unwrap_or(0),
        c["fp"].as_u64().unwrap_or(0),
        c["fn"].as_u64().unwrap_or(0),
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"auroc": s["auroc"], "threshold": s["threshold"], "anomalous_windows": tp + fn_, "caught": tp, "false_alarms": fp, "windows": s["samples"], "run": run})
        );
    } else {
        println!(
            "NAB realKnownCause/machine_temperature_system_failure, test period (last 20% of windows of 128, stride 16)"
        );
        println!("windows scored:                    {}", s["samples"]);
        println!("windows overlapping a NAB anomaly: {}", tp + fn_);
        println!("  flagged (caught):                {tp}");
        println!("false alarms (normal flagged):     {fp}");
        println!(
            "AUROC over the test windows:       {:.3}",
            s["auroc"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "threshold (mean + 3σ of validation scores): {:.5}",
            s["threshold"].as_f64().unwrap_or(f64::NAN)
        );
        println!("run: {}", run.display());
    }
    Ok(())
}

/// Denoising on the MNIST test set: trains configs/mnist-dae.toml (Gaussian
/// σ = 0.5), then compares PSNR with the noisy input and classical filters.
fn denoise(json: bool, data_dir: Option<String>, epochs: Option<usize>) -> Result<()> {
    let ae = build_ae()?;
    let dir = mnist_dir(data_dir)?;
    let run = train_for_bench(&ae, &dir, "configs/mnist-dae.toml", "denoise", epochs)?;
    print_eval(&ae, "denoise-eval", &run, &dir, json)?;
    if !json {
        println!(
            "targets (Gaussian σ 0.5): >= 10 dB over the noisy input, >= 4 dB over the best classical filter"
        );
        println!("run: {}", run.display());
    }
    Ok(())
}

/// Runs `ae SUBCOMMAND --model RUN --data-dir DIR [--json]` and prints what
/// it printed.
fn print_eval(ae: &Path, subcommand: &str, run: &Path, dir: &Path, json: bool) -> Result<()> {
    let mut eval = Command::new(ae);
    eval.current_dir(project_root())
        .args([subcommand, "--model"])
        .arg(run)
        .arg("--data-dir")
        .arg(dir);
    if json {
        eval.arg("--json");
    }
    let out = eval.output()?;
    if !out.status.success() {
        bail!(
            "{subcommand} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Trains `config` on the MNIST files in `dir` into a fresh
/// `runs/bench-{prefix}-{time}` and returns that run directory.
fn train_for_bench(
    ae: &Path,
    dir: &Path,
    config: &str,
    prefix: &str,
    epochs: Option<usize>,
) -> Result<PathBuf> {
    let root = project_root();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run = root.join("runs").join(format!("bench-{prefix}-{stamp}"));
    eprintln!("{prefix}: training {config} into {}", run.display());
    let mut train = Command::new(ae);
    train
        .current_dir(&root)
        .args([
            "train",
            "--quiet",
            "--json",
            "--config",
            config,
            "--data-dir",
        ])
        .arg(dir)
        .arg("--out")
        .arg(&run);
    if let Some(e) = epochs {
        train.args(["--epochs", &e.to_string()]);
    }
    json_of(&mut train)?;
    Ok(run)
}

/// `bench features`: trains the MNIST conv AE (or takes `--model RUN`) and
/// runs `ae features-eval` on it.
fn features(
    json: bool,
    data_dir: Option<String>,
    epochs: Option<usize>,
    model: Option<String>,
) -> Result<()> {
    let ae = build_ae()?;
    let dir = mnist_dir(data_dir)?;
    let run = match model {
        Some(m) => PathBuf::from(m),
        None => train_for_bench(&ae, &dir, "configs/mnist-ae.toml", "features", epochs)?,
    };
    print_eval(&ae, "features-eval", &run, &dir, json)?;
    if !json {
        println!("run: {}", run.display());
    }
    Ok(())
}

/// `bench vae`: trains the MNIST VAE on dynamically binarised MNIST (or takes
/// `--model RUN`) and prints the importance-sampled test NLL beside
/// published figures.
/// The model `bench vae` trains: a VAE whose decoder has a pixel context.
const VAE_CONFIG: &str = "configs/mnist-pixelvae.toml";

fn vae(
    json: bool,
    data_dir: Option<String>,
    epochs: Option<usize>,
    model: Option<String>,
    iw_samples: usize,
    iw_limit: Option<usize>,
) -> Result<()> {
    let ae = build_ae()?;
    let dir = mnist_dir(data_dir)?;
    let root = project_root();
    let started = std::time::Instant::now();
    let trained = model.is_none();
    let run = match model {
        Some(m) => PathBuf::from(m),
        None => train_for_bench(&ae, &dir, VAE_CONFIG, "vae", epochs)?,
    };
    let train_minutes = started.elapsed().as_secs_f64() / 60.0;
    let mut eval = Command::new(&ae);
    eval.current_dir(&root)
        .args(["eval", "--json", "--model"])
        .arg(&run)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--iw-samples", &iw_samples.to_string()]);
    if let Some(l) = iw_limit {
        eval.args(["--iw-limit", &l.to_string()]);
    }
    let m = json_of(&mut eval)?;
    let nll = m["nll"]["nll"].as_f64().unwrap_or(f64::NAN);
    let bound = m["nll"]["bound"].as_str().unwrap_or("").to_string();
    let images = m["nll"]["images"].as_u64().unwrap_or(0);
    let elbo = m["neg_elbo"].as_f64().unwrap_or(f64::NAN);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "nll": nll, "bound": bound, "images": images, "neg_elbo": elbo,
                "train_minutes": train_minutes, "run": run,
                "published": {"vae_pythae": 89.8, "iwae_pythae": 86.8, "conv_vae": 81.0},
                "target": 84.0,
            })
        );
        return Ok(());
    }
    println!("dynamically binarised MNIST, test set ({images} images), nats per image:");
    println!("| model | NLL |");
    println!("| --- | ---: |");
    println!("| ae conv VAE + pixel context ({VAE_CONFIG}), {bound} | {nll:.2} |");
    println!("| the same, negative ELBO | {elbo:.2} |");
    println!("| VAE (pythae benchmark) | 89.8 |");
    println!("| IWAE (pythae benchmark) | 86.8 |");
    println!("| convolutional VAE (published) | 81.0 |");
    println!("target: <= 84 nats within 60 minutes of training");
    if trained {
        println!(
            "run: {} (training took {train_minutes:.1} min)",
            run.display()
        );
    } else {
        println!("run: {} (given with --model)", run.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_read_from_json_lines() {
        let out = "train: 1 img/s\nJSON {\"figure\": \"train_images_per_second\", \"value\": 5581.2, \"unit\": \"img/s\"}\nJSON {\"figure\":\"peak_rss\",\"value\":99.5}\n";
        let f = super::figures(out);
        assert_eq!(f["train_images_per_second"], 5581.2);
        assert_eq!(f["peak_rss"], 99.5);
    }
}
