//! `ae score` and `ae threshold fit`.

use std::path::{Path, PathBuf};

use ae_anomaly::metrics::{at_threshold, auroc, average_precision};
use ae_anomaly::{Detector, ScoreKind, Scorer, Threshold, ThresholdMethod, write_heatmap};
use ae_data::{ColorMode, Dataset};

use crate::usemodel::normalizer;
use ae_train::{DataSource, TrainConfig, files};
use anyhow::{Context, Result, bail};
use candle_core::Device;

pub struct ScoreArgs {
    pub model: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub images: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub label_column: Option<String>,
    pub score: Option<String>,
    pub output: Option<PathBuf>,
    pub heatmaps: Option<PathBuf>,
    pub top: usize,
    pub json: bool,
}

fn parse_score(s: &str) -> Result<ScoreKind> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .with_context(|| format!("unknown score `{s}`: mse, l1, ssim or neg_elbo"))
}

/// Data to score and whether each sample is anomalous (when known).
struct Scored {
    data: Dataset,
    anomalous: Option<Vec<bool>>,
    what: String,
}

fn load_data(
    run: &Path,
    model: &ae_core::Model,
    a: &ScoreArgs,
    split_test: bool,
) -> Result<Scored> {
    if let Some(dir) = &a.images {
        let dims = model.config().input_dims();
        let (color, size) = match dims.as_slice() {
            [1, h, w] => (ColorMode::Gray, (*w as u32, *h as u32)),
            [3, h, w] => (ColorMode::Rgb, (*w as u32, *h as u32)),
            _ => bail!(
                "the model in {} does not take 1- or 3-channel images (input {dims:?})",
                run.display()
            ),
        };
        let mut data = ae_data::load_image_folder(dir, color, Some(size))?;
        normalizer(run)?.apply_to(&mut data)?;
        let anomalous = data
            .labels()
            .map(|l| l.iter().map(|&v| v == ae_data::ABNORMAL).collect());
        return Ok(Scored {
            data,
            anomalous,
            what: format!("images in {}", dir.display()),
        });
    }
    if let Some(csv) = &a.csv {
        let mut data = ae_data::load_csv_vectors(csv, a.label_column.as_deref())?;
        normalizer(run)?.apply_to(&mut data)?;
        let anomalous = data.labels().map(|l| l.iter().map(|&v| v != 0).collect());
        return Ok(Scored {
            data,
            anomalous,
            what: csv.display().to_string(),
        });
    }
    let cfg = TrainConfig::from_file(&run.join(files::CONFIG)).with_context(|| {
        format!(
            "{} is not a training run: pass --images or --csv",
            run.display()
        )
    })?;
    let prepared = ae_train::prepare(&cfg.data, &cfg.model, cfg.seed, a.data_dir.as_deref())?;
    let part = if split_test {
        prepared.test
    } else {
        prepared.val
    };
    let data = part.input;
    // Which labels mean "anomalous": classes outside the trained ones, or the
    // label 1 of image folders and series windows.
    let anomalous = match (&cfg.data.classes, &cfg.data.source, data.labels()) {
        (Some(classes), _, Some(l)) => Some(l.iter().map(|v| !classes.contains(v)).collect()),
        (
            None,
            DataSource::Images { .. } | DataSource::Series { .. } | DataSource::Csv { .. },
            Some(l),
        ) => Some(l.iter().map(|&v| v != 0).collect()),
        _ => None,
    };
    let what = format!(
        "{} split of {}",
        if split_test { "test" } else { "validation" },
        prepared.description
    );
    Ok(Scored {
        data,
        anomalous,
        what,
    })
}

pub fn score(a: ScoreArgs) -> Result<()> {
    let dev = Device::Cpu;
    let mut detector = match &a.score {
        Some(s) => Detector::load(
            &a.model,
            Scorer {
                kind: parse_score(s)?,
                ..Scorer::default()
            },
            &dev,
        )?,
        None if a.model.join(ae_anomaly::THRESHOLD_FILE).exists() => {
            Detector::open(&a.model, &dev)?
        }
        None => Detector::load(&a.model, Scorer::default(), &dev)?,
    };
    detector.scorer.seed = 0;
    let s = load_data(&a.model, &detector.model, &a, true)?;
    let scores = detector.score(&s.data)?;
    let t = detector.threshold.clone();
    let predictions: Option<Vec<bool>> = t
        .as_ref()
        .map(|t| scores.iter().map(|&x| t.is_anomalous(x)).collect());
    if let Some(out) = &a.output {
        let mut text = String::from("index,key,score,anomalous,prediction\n");
        for (i, sc) in scores.iter().enumerate() {
            let key = s
                .data
                .keys()
                .map(|k| k[i].replace(',', ";"))
                .unwrap_or_default();
            let lab = s
                .anomalous
                .as_ref()
                .map_or(String::new(), |l| u8::from(l[i]).to_string());
            let pred = predictions
                .as_ref()
                .map_or(String::new(), |p| u8::from(p[i]).to_string());
            text.push_str(&format!("{i},{key},{sc},{lab},{pred}\n"));
        }
        ae_core::checkpoint::write_atomic(out, text.as_bytes())?;
    }
    let auroc_v = s.anomalous.as_ref().and_then(|l| auroc(&scores, l));
    let auprc = s
        .anomalous
        .as_ref()
        .and_then(|l| average_precision(&scores, l));
    let at = match (&s.anomalous, &t) {
        (Some(l), Some(t)) => Some(at_threshold(&scores, l, t.value)),
        _ => None,
    };
    if let Some(dir) = &a.heatmaps {
        write_heatmaps(&detector, &s.data, &scores, dir, a.top)?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "samples": scores.len(), "data": s.what, "score": detector.scorer.kind,
                "auroc": auroc_v, "auprc": auprc, "f1": at.map(|m| m.f1), "precision": at.map(|m| m.precision),
                "recall": at.map(|m| m.recall), "confusion": at.map(|m| serde_json::json!({"tp": m.tp, "fp": m.fp, "tn": m.tn, "fn": m.fn_})),
                "threshold": t.as_ref().map(|t| t.value), "flagged": predictions.as_ref().map(|p| p.iter().filter(|&&x| x).count()),
            })
        );
        return Ok(());
    }
    println!(
        "scored {} samples of {} ({:?} score)",
        scores.len(),
        s.what,
        detector.scorer.kind
    );
    let mut sorted: Vec<f64> = scores.iter().map(|&v| f64::from(v)).collect();
    sorted.sort_by(f64::total_cmp);
    println!(
        "scores: min {:.5}  median {:.5}  max {:.5}",
        sorted[0],
        ae_anomaly::quantile(&sorted, 0.5),
        sorted[sorted.len() - 1]
    );
    if let Some(v) = auroc_v {
        println!(
            "AUROC {:.4}   average precision {:.4}",
            v,
            auprc.unwrap_or(f64::NAN)
        );
    } else if s.anomalous.is_none() {
        println!("no anomaly labels for these data: no AUROC");
    }
    match (&t, at) {
        (Some(t), Some(m)) => println!(
            "threshold {:.5} ({}): F1 {:.4}  precision {:.4}  recall {:.4}  tp {} fp {} tn {} fn {}",
            t.value,
            t.method.name(),
            m.f1,
            m.precision,
            m.recall,
            m.tp,
            m.fp,
            m.tn,
            m.fn_
        ),
        (Some(t), None) => println!(
            "threshold {:.5} ({}): {} of {} flagged",
            t.value,
            t.method.name(),
            predictions
                .as_ref()
                .map_or(0, |p| p.iter().filter(|&&x| x).count()),
            scores.len()
        ),
        (None, _) => println!(
            "no threshold.json: fit one with `ae threshold fit --model {} --method ...`",
            a.model.display()
        ),
    }
    if let Some(out) = &a.output {
        println!("scores written to {}", out.display());
    }
    if let Some(dir) = &a.heatmaps {
        println!(
            "heat maps of the {} highest scores in {}",
            a.top.min(scores.len()),
            dir.display()
        );
    }
    Ok(())
}

fn write_heatmaps(
    detector: &Detector,
    data: &Dataset,
    scores: &[f32],
    dir: &Path,
    top: usize,
) -> Result<()> {
    let dims = data.sample_dims().to_vec();
    if dims.len() != 3 {
        bail!("heat maps need images, these samples are {dims:?}");
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(top);
    let x = data.tensor(&order, detector.model.device())?;
    use ae_core::Autoencoder;
    let recon = detector.model.infer(&x)?.reconstruction;
    let err = ae_anomaly::Scorer::error_map(&detector.model, &x)?;
    let (xs, rs, es) = (
        x.flatten_all()?.to_vec1::<f32>()?,
        recon.flatten_all()?.to_vec1::<f32>()?,
        err.flatten_all()?.to_vec1::<f32>()?,
    );
    let scale = es.iter().copied().fold(0.0f32, f32::max);
    let per = data.per_sample();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (rank, &i) in order.iter().enumerate() {
        let sl = |v: &[f32]| v[rank * per..(rank + 1) * per].to_vec();
        let path = dir.join(format!("rank-{:03}-sample-{i}.png", rank + 1));
        write_heatmap(&path, &sl(&xs), &sl(&rs), &sl(&es), &dims, scale, 4)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn fit_threshold(
    run: &Path,
    method: &str,
    value: Option<f64>,
    q: Option<f64>,
    rate: Option<f64>,
    k: Option<f64>,
    bins: Option<usize>,
    score: &str,
    data_dir: Option<PathBuf>,
    images: Option<PathBuf>,
) -> Result<()> {
    let m = match method {
        "manual" => ThresholdMethod::Manual {
            value: value.context("manual needs --value")?,
        },
        "percentile" => ThresholdMethod::Percentile {
            q: q.unwrap_or(95.0),
        },
        "contamination" => ThresholdMethod::Contamination {
            rate: rate.unwrap_or(0.05),
        },
        "mean_std" => ThresholdMethod::MeanStd {
            k: k.unwrap_or(3.0),
        },
        "median_mad" => ThresholdMethod::MedianMad {
            k: k.unwrap_or(3.0),
        },
        "iqr" => ThresholdMethod::Iqr {
            k: k.unwrap_or(1.5),
        },
        "otsu" => ThresholdMethod::Otsu {
            bins: bins.unwrap_or(256),
        },
        "f1_adaptive" => ThresholdMethod::F1Adaptive,
        other => bail!(
            "unknown method `{other}`: manual, percentile, contamination, mean_std, median_mad, iqr, otsu, f1_adaptive"
        ),
    };
    m.validate()?;
    let kind = parse_score(score)?;
    let mut detector = Detector::load(
        run,
        Scorer {
            kind,
            ..Scorer::default()
        },
        &Device::Cpu,
    )?;
    let args = ScoreArgs {
        model: run.to_path_buf(),
        data_dir,
        images,
        csv: None,
        label_column: None,
        score: None,
        output: None,
        heatmaps: None,
        top: 0,
        json: false,
    };
    let t: Threshold = if m == ThresholdMethod::F1Adaptive {
        let s = load_data(run, &detector.model, &args, true)?;
        let labels = s.anomalous.context("f1_adaptive needs labelled data: pass --images DIR with normal/ and abnormal/ subfolders")?;
        if args.images.is_none() {
            eprintln!(
                "note: f1_adaptive fitted on the labelled test split; metrics on that split are then optimistic"
            );
        }
        detector.fit(m, &s.data, Some(&labels))?.clone()
    } else {
        let s = load_data(run, &detector.model, &args, false)?;
        detector.fit(m, &s.data, None)?.clone()
    };
    println!(
        "threshold {:.6} ({} on {:?} scores of {} samples; normal scores mean {:.6}, std {:.6}) written to {}",
        t.value,
        t.method.name(),
        t.score,
        t.stats.n,
        t.stats.mean,
        t.stats.std,
        run.join(ae_anomaly::THRESHOLD_FILE).display()
    );
    Ok(())
}
