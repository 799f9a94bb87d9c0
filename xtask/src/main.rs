//! `cargo xtask`: the project's tasks.
//!
//! ```text
//! cargo xtask train [--config FILE] [--data-dir DIR] [--epochs N] [--out DIR]
//! cargo xtask download mnist|fashion-mnist|nab [--dir DIR] [--from PATH] [--mirror URL]...
//! cargo xtask bench perf [--json] [--python PATH]
//! ```
//!
//! This is the only code in the workspace that touches the network (through
//! `curl`, for downloads).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod compress;
mod download;
#[cfg(test)]
mod tidy;

const HELP: &str = "\
cargo xtask <task>

tasks:
  train [--config FILE] [--data-dir DIR] [--epochs N] [--out DIR]
      Build `ae` in release mode and train. Without --config: the MNIST conv
      autoencoder on full MNIST when data/mnist (or $AE_DATA_DIR/mnist, or
      --data-dir) holds it, else on the 2,000 digits bundled with ae-data.
  download mnist|fashion-mnist|nab [--dir DIR] [--from PATH] [--mirror URL]...
      Fetch a dataset into DIR (default data/<name>), verifying digests;
      --from imports from a local directory or archive instead.
  bench perf [--json] [--python PATH] [--rounds N] [--steps N]
      Speed of the mnist-conv model against the PyTorch reference
      (../shared/bench/torch_reference.py), interleaved, as ratios.
  bench quality-recon [--json] [--data-dir DIR] [--epochs N]
      Test squared error per image of the MNIST conv AE (latent 32) on full
      MNIST beside PCA with 30 and 32 components and published figures.
  bench oneclass [--dataset mnist|fashion-mnist] [--classes 0,1,..] [--json]
      One-class anomaly detection: train on each class alone, AUROC on the
      whole test set, beside Deep SVDD's published figures.
  bench denoise [--json] [--data-dir DIR] [--epochs N]
      PSNR of the MNIST denoising autoencoder beside the noisy input and
      classical filters (3x3 median, Gaussian blur).
  bench features [--json] [--data-dir DIR] [--epochs N] [--model RUN]
      A linear classifier (multinomial logistic regression) on the latent
      codes of the MNIST conv AE, on PCA codes of the same size and on raw
      pixels: test accuracy of each (trains the AE unless --model is given).
  bench vae [--json] [--data-dir DIR] [--epochs N] [--model RUN]
            [--iw-samples K] [--iw-limit N]
      The MNIST VAE with a pixel context (configs/mnist-pixelvae.toml) on
      dynamically binarised MNIST: importance-sampled test NLL (IWAE bound,
      k = 1000 by default) beside published figures.
  bench compress [--json] [--data-dir DIR] [--epochs N] [--lambdas L,L..]
                 [--limit N] [--reuse]
      The learned codec (configs/mnist-codec.toml, one run per rate weight)
      against PNG, JPEG, WebP and gzip on the MNIST test set: bytes per image
      and PSNR, bytes needed at 25/28/32 dB, and a plot. --reuse keeps
      finished codec runs in runs/bench-compress.
  bench nab [--json]
      A 1-D conv AE on NAB machine-temperature windows: labelled anomaly
      windows caught and false alarms at a fitted threshold.
";

/// The workspace root.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Command-line arguments as `--flag value` pairs and positionals.
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    fn new(rest: Vec<String>) -> Self {
        Args { rest }
    }

    /// Removes and returns every value of `--name VALUE`.
    pub fn values(&mut self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        while let Some(i) = self.rest.iter().position(|a| a == name) {
            if i + 1 >= self.rest.len() {
                bail!("{name} needs a value");
            }
            out.push(self.rest.remove(i + 1));
            self.rest.remove(i);
        }
        Ok(out)
    }

    /// Removes and returns the last value of `--name VALUE`.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self.values(name)?.pop())
    }

    /// Removes `--name` and says whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        let had = self.rest.iter().any(|a| a == name);
        self.rest.retain(|a| a != name);
        had
    }

    /// The remaining positional arguments; fails on unknown flags.
    pub fn finish(self) -> Result<Vec<String>> {
        if let Some(f) = self.rest.iter().find(|a| a.starts_with("--")) {
            bail!("unknown option {f}\n\n{HELP}");
        }
        Ok(self.rest)
    }
}

fn main() -> std::process::ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprint!("{HELP}");
        return std::process::ExitCode::FAILURE;
    }
    let task = argv.remove(0);
    let args = Args::new(argv);
    let result = match task.as_str() {
        "train" => train(args),
        "download" => download::run(args),
        "bench" => bench::run_bench(args),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds the release `ae` binary and returns its path.
pub fn build_ae() -> Result<PathBuf> {
    let root = project_root();
    let status = Command::new(cargo())
        .current_dir(&root)
        .args(["build", "--release", "--package", "ae-cli", "--bin", "ae"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ae failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target
        .join("release")
        .join(format!("ae{}", std::env::consts::EXE_SUFFIX)))
}

/// `true` when `dir` holds the four MNIST-layout IDX files (raw or .gz).
pub fn has_idx(dir: &Path) -> bool {
    download::MNIST_FILES
        .iter()
        .all(|(n, ..)| dir.join(format!("{n}.gz")).is_file() || dir.join(n).is_file())
}

fn train(mut args: Args) -> Result<()> {
    let config = args.value("--config")?;
    let data_dir = args.value("--data-dir")?;
    let epochs = args.value("--epochs")?;
    let out = args.value("--out")?;
    let rest = args.finish()?;
    if !rest.is_empty() {
        bail!("unexpected arguments {rest:?}");
    }
    let root = project_root();
    let ae = build_ae()?;
    let mut cmd = Command::new(&ae);
    cmd.current_dir(&root).arg("train");
    match config {
        Some(c) => {
            cmd.args(["--config", &c]);
            if let Some(d) = &data_dir {
                cmd.args(["--data-dir", d]);
            }
        }
        None => {
            let dir = data_dir.map(PathBuf::from).unwrap_or_else(|| {
                match std::env::var_os("AE_DATA_DIR") {
                    Some(d) => PathBuf::from(d).join("mnist"),
                    None => root.join("data").join("mnist"),
                }
            });
            if has_idx(&dir) {
                println!(
                    "xtask: training the MNIST conv autoencoder on full MNIST from {}",
                    dir.display()
                );
                cmd.args(["--config", "configs/mnist-ae.toml", "--data-dir"])
                    .arg(&dir);
            } else {
                println!(
                    "xtask: MNIST not found in {} (get it with `cargo xtask download mnist`);\n\
                     xtask: training the MNIST conv autoencoder on the 2,000 real MNIST digits bundled with ae-data",
                    dir.display()
                );
                cmd.args(["--config", "configs/mnist-ae-sample.toml"]);
            }
        }
    }
    if let Some(e) = epochs {
        cmd.args(["--epochs", &e]);
    }
    if let Some(o) = out {
        cmd.args(["--out", &o]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", ae.display()))?;
    if !status.success() {
        bail!("training failed");
    }
    Ok(())
}
