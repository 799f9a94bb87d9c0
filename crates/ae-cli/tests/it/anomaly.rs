//! `ae threshold fit` and `ae score` on a one-class run.

use crate::{ae, fails, ok, tiny_config};

fn oneclass_run(tmp: &std::path::Path, name: &str) -> std::path::PathBuf {
    let cfg = tiny_config(tmp, name, "", "classes = [1]");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("limit = 256", "")
        .replace("epochs = 2", "epochs = 4");
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.join(name);
    ok(&ae(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    run
}

#[test]
fn threshold_then_score_with_metrics_csv_and_heatmaps() {
    let tmp = tempfile::tempdir().unwrap();
    let run = oneclass_run(tmp.path(), "ones");
    let r = run.to_str().unwrap();
    let out = ok(&ae(&["score", "--model", r, "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!((0.0..=1.0).contains(&v["auroc"].as_f64().unwrap()), "{v}");
    assert!(v["threshold"].is_null());

    ok(&ae(&[
        "threshold",
        "fit",
        "--model",
        r,
        "--method",
        "percentile",
        "--q",
        "95",
    ]));
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("threshold.json")).unwrap())
            .unwrap();
    assert_eq!(t["method"]["name"], "percentile");
    let csv = tmp.path().join("scores.csv");
    let heat = tmp.path().join("heat");
    let out = ok(&ae(&[
        "score",
        "--model",
        r,
        "--json",
        "-o",
        csv.to_str().unwrap(),
        "--heatmaps",
        heat.to_str().unwrap(),
        "--top",
        "3",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in ["auroc", "auprc", "f1", "threshold", "precision", "recall"] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    let lines = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(lines.lines().count(), 201, "header + 200 test samples");
    assert!(lines.starts_with("index,key,score,anomalous,prediction"));
    // The reported metrics agree with the written scores and labels.
    let rows: Vec<Vec<&str>> = lines
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let scores: Vec<f32> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r[3] == "1").collect();
    let normal = labels.iter().filter(|&&l| !l).count();
    assert!(
        normal > 0 && normal < 200,
        "the test ones are normal, the rest anomalous: {normal}"
    );
    let recomputed = ae_anomaly::metrics::auroc(&scores, &labels).unwrap();
    assert!((recomputed - v["auroc"].as_f64().unwrap()).abs() < 1e-9);
    let flagged = rows.iter().filter(|r| r[4] == "1").count();
    let t = v["threshold"].as_f64().unwrap();
    assert_eq!(
        flagged,
        scores.iter().filter(|&&s| f64::from(s) > t).count()
    );
    assert_eq!(std::fs::read_dir(&heat).unwrap().count(), 3);

    for method in [
        "mean_std",
        "median_mad",
        "iqr",
        "otsu",
        "contamination",
        "f1_adaptive",
    ] {
        ok(&ae(&["threshold", "fit", "--model", r, "--method", method]));
    }
    ok(&ae(&[
        "threshold",
        "fit",
        "--model",
        r,
        "--method",
        "percentile",
        "--score",
        "ssim",
    ]));
    let human = ok(&ae(&["score", "--model", r]));
    assert!(human.contains("AUROC") && human.contains("F1"), "{human}");
}

#[test]
fn bad_threshold_and_scoring_input() {
    let tmp = tempfile::tempdir().unwrap();
    let run = oneclass_run(tmp.path(), "a");
    let r = run.to_str().unwrap();
    let e = fails(&ae(&[
        "threshold",
        "fit",
        "--model",
        r,
        "--method",
        "contamination",
        "--rate",
        "0.7",
    ]));
    assert!(e.contains("(0, 0.5]"), "{e}");
    let e = fails(&ae(&["threshold", "fit", "--model", r, "--method", "best"]));
    assert!(e.contains("unknown method"), "{e}");
    let e = fails(&ae(&["score", "--model", r, "--score", "neg_elbo"]));
    assert!(e.contains("variational"), "{e}");
    // Vectors of the wrong width for the model.
    let csv = tmp.path().join("v.csv");
    std::fs::write(&csv, "a,b,c\n1,2,3\n").unwrap();
    let e = fails(&ae(&[
        "score",
        "--model",
        r,
        "--csv",
        csv.to_str().unwrap(),
    ]));
    assert!(e.contains("[1, 28, 28]") && e.contains("[3]"), "{e}");
    // A threshold.json of another model.
    let other = oneclass_run(tmp.path(), "b");
    ok(&ae(&[
        "threshold",
        "fit",
        "--model",
        other.to_str().unwrap(),
        "--method",
        "percentile",
    ]));
    let text = std::fs::read_to_string(other.join("threshold.json")).unwrap();
    let foreign = text.replace(
        &serde_json::from_str::<serde_json::Value>(&text).unwrap()["model_digest"]
            .as_str()
            .unwrap()
            .to_string(),
        "0000000000000000",
    );
    std::fs::write(run.join("threshold.json"), foreign).unwrap();
    let e = fails(&ae(&["score", "--model", r]));
    assert!(e.contains("threshold.json") && e.contains("digest"), "{e}");
}
