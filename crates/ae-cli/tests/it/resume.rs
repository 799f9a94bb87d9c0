//! Killing a run mid-epoch (SIGKILL) and resuming it loses at most that epoch
//! and repeats exactly what an uninterrupted run does.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ae, metrics, ok, tiny_config};

#[test]
fn kill_9_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "r", "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("limit = 256", "limit = 1200")
        .replace("epochs = 2", "epochs = 4");
    std::fs::write(&cfg, text).unwrap();
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        full.to_str().unwrap(),
        "--quiet",
    ]));

    let mut child = Command::new(env!("CARGO_BIN_EXE_ae"))
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint, then kill during the second epoch.
    let start = Instant::now();
    while !killed.join("state.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("state.json")).unwrap()).unwrap();
    let done = state["epoch"].as_u64().unwrap();
    assert!(done >= 1, "{state}");
    assert!(killed.join(state["weights"].as_str().unwrap()).is_file());

    ok(&ae(&[
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--quiet",
    ]));
    let (a, b) = (metrics(&full), metrics(&killed));
    assert_eq!(b.len(), 4, "{b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["epoch"], y["epoch"]);
        assert_eq!(x["train_loss"], y["train_loss"], "epoch {}", x["epoch"]);
        assert_eq!(x["val_loss"], y["val_loss"], "epoch {}", x["epoch"]);
    }
    let t = |d: &std::path::Path| std::fs::read_to_string(d.join("test.json")).unwrap();
    assert_eq!(t(&full), t(&killed));
}

#[test]
fn resume_extends_a_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "x", "", "");
    let run = tmp.path().join("run");
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    ok(&ae(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        "3",
        "--quiet",
    ]));
    assert_eq!(metrics(&run).len(), 3);
}
