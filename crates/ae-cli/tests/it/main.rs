//! End-to-end tests of the `ae` binary (one test binary for the crate).

mod anomaly;
mod bad_input;
mod codec;
mod resume;
mod train;
mod usemodel;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `ae` with `args` (quietly) and returns its output.
pub fn ae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ae"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ae")
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ae failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure with a non-zero exit and returns stderr.
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "ae should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tiny conv model on the bundled sample; `extra` is appended to the file.
pub fn tiny_config(dir: &Path, name: &str, model_extra: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
name = "{name}"
seed = 7

[model]
kind = "conv"
in_channels = 1
height = 28
width = 28
channels = [4, 8]
latent = {{ kind = "dense", dim = 8 }}
{model_extra}

[data]
source = {{ kind = "mnist_sample" }}
limit = 256
{extra}

[train]
epochs = 2
batch_size = 32
optimizer = {{ kind = "adamw", lr = 3e-3 }}
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The `metrics.jsonl` of a run as JSON values.
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
