//! Turns a [`DataConfig`] into train, validation and test splits, normalised
//! with statistics of the training split, and checks that they fit the model.

use std::path::{Path, PathBuf};

use ae_core::ModelConfig;
use ae_data::{Dataset, FashionMnist, Mnist, Normalizer, Split};
use rand::seq::SliceRandom;

use crate::config::{DataConfig, DataSource};
use crate::error::{Error, Result};

/// Inputs and, for paired training, targets (same length and order).
#[derive(Debug, Clone)]
pub struct Part {
    /// Model inputs.
    pub input: Dataset,
    /// Targets; `None` means the input is its own target.
    pub target: Option<Dataset>,
}

impl Part {
    fn subset(&self, idx: &[usize]) -> Part {
        Part {
            input: self.input.subset(idx),
            target: self.target.as_ref().map(|t| t.subset(idx)),
        }
    }

    /// The target of the samples at `indices` (the input when unpaired).
    pub fn target(&self) -> &Dataset {
        self.target.as_ref().unwrap_or(&self.input)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.input.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }
}

/// The three splits of a run and the fitted normaliser.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Training samples.
    pub train: Part,
    /// Validation samples (from the training data).
    pub val: Part,
    /// Test samples.
    pub test: Part,
    /// Fitted on the training inputs; applied to every split.
    pub normalizer: Normalizer,
    /// Where the data came from, for people.
    pub description: String,
}

/// The default directory of a named IDX dataset: `$AE_DATA_DIR/<name>`, else
/// `data/<name>`.
pub fn default_data_dir(name: &str) -> PathBuf {
    match std::env::var_os("AE_DATA_DIR") {
        Some(d) => PathBuf::from(d).join(name),
        None => PathBuf::from("data").join(name),
    }
}

fn idx_dir(dir: &Option<PathBuf>, override_dir: Option<&Path>, name: &str) -> PathBuf {
    override_dir
        .map(Path::to_path_buf)
        .or_else(|| dir.clone())
        .unwrap_or_else(|| default_data_dir(name))
}

/// Loads a source: the training data and, where the source has one, its test split.
fn load(
    source: &DataSource,
    override_dir: Option<&Path>,
) -> Result<(Dataset, Option<Dataset>, bool)> {
    Ok(match source {
        DataSource::Mnist { dir } => {
            let dir = idx_dir(dir, override_dir, "mnist");
            (
                Mnist::load(&dir, Split::Train)?,
                Some(Mnist::load(&dir, Split::Test)?),
                false,
            )
        }
        DataSource::FashionMnist { dir } => {
            let dir = idx_dir(dir, override_dir, "fashion-mnist");
            (
                FashionMnist::load(&dir, Split::Train)?,
                Some(FashionMnist::load(&dir, Split::Test)?),
                false,
            )
        }
        DataSource::MnistSample => (ae_data::bundled_mnist_sample()?, None, false),
        DataSource::Images {
            dir,
            test_dir,
            color,
            resize,
        } => {
            let resize = resize.map(|[w, h]| (w, h));
            let train = ae_data::load_image_folder(dir, *color, resize)?;
            let test = test_dir
                .as_ref()
                .map(|d| ae_data::load_image_folder(d, *color, resize))
                .transpose()?;
            (train, test, false)
        }
        DataSource::Csv {
            path,
            test_path,
            label_column,
        } => {
            let train = ae_data::load_csv_vectors(path, label_column.as_deref())?;
            let test = test_path
                .as_ref()
                .map(|p| ae_data::load_csv_vectors(p, label_column.as_deref()))
                .transpose()?;
            (train, test, false)
        }
        DataSource::Series {
            path,
            window,
            stride,
            labels,
            key,
        } => {
            let series = ae_data::load_series_csv(path)?;
            let spans = match labels {
                Some(l) => {
                    let all = ae_data::load_nab_windows(l)?;
                    let key = key
                        .clone()
                        .ok_or_else(|| Error::config("data.source.key", "needed with `labels`"))?;
                    Some(all.get(&key).cloned().ok_or_else(|| {
                        Error::config(
                            "data.source.key",
                            format!("`{key}` is not in {}", l.display()),
                        )
                    })?)
                }
                None => None,
            };
            (
                series.windows(*window, *stride, spans.as_deref())?,
                None,
                true,
            )
        }
    })
}

/// Checks that samples of `data` fit `model`.
pub fn check_fits(model: &ModelConfig, data: &Dataset) -> Result<()> {
    let want = model.input_dims();
    let have = data.sample_dims();
    let ok = match model {
        ModelConfig::Dense(c) => data.per_sample() == c.input_dim,
        _ => want == have,
    };
    if ok {
        return Ok(());
    }
    let fmt = |d: &[usize]| {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" x ")
    };
    Err(Error::DataMismatch(format!(
        "the {} model takes samples of {}, but `{}` has samples of {}",
        model.kind(),
        fmt(&want),
        data.name(),
        fmt(have)
    )))
}

fn split_idx(
    n: usize,
    fraction: f64,
    rng: &mut ae_data::Rng,
    chronological: bool,
) -> (Vec<usize>, Vec<usize>) {
    let k = (n as f64 * fraction).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    if chronological {
        let held = idx.split_off(n - k);
        return (idx, held);
    }
    idx.shuffle(rng);
    let held = idx.split_off(n - k);
    (idx, held)
}

/// Loads and splits the data of a run. `override_dir` replaces the directory
/// of an IDX source (`--data-dir`).
pub fn prepare(
    cfg: &DataConfig,
    model: &ModelConfig,
    seed: u64,
    override_dir: Option<&Path>,
) -> Result<Prepared> {
    let mut rng = ae_data::rng(seed ^ 0x5EED_DA7A);
    let (input, test_input, chronological) = load(&cfg.source, override_dir)?;
    let (target, test_target) = match &cfg.target {
        Some(t) => {
            let (a, b, _) = load(t, override_dir)?;
            (Some(a), b)
        }
        None => (None, None),
    };
    if let Some(t) = &target
        && t.len() != input.len()
    {
        return Err(Error::DataMismatch(format!(
            "paired data: {} inputs in `{}` but {} targets in `{}`",
            input.len(),
            input.name(),
            t.len(),
            t.name()
        )));
    }
    let description = match (&target, &test_input) {
        (Some(t), _) => format!("{} → {}", input.name(), t.name()),
        (None, Some(_)) => format!("{} (+ its test split)", input.name()),
        (None, None) => input.name().to_string(),
    };
    let all = Part { input, target };
    let (train_full, test) = match test_input {
        Some(ti) => {
            let test = Part {
                target: test_target,
                input: ti,
            };
            if test
                .target
                .as_ref()
                .is_some_and(|t| t.len() != test.input.len())
            {
                return Err(Error::DataMismatch(
                    "paired test data of different lengths".into(),
                ));
            }
            (all, test)
        }
        None => {
            let (train_idx, test_idx) =
                split_idx(all.len(), cfg.test_fraction, &mut rng, chronological);
            (all.subset(&train_idx), all.subset(&test_idx))
        }
    };
    let mut train_full = train_full;
    if let Some(classes) = &cfg.classes {
        let labels = train_full.input.labels().ok_or_else(|| {
            Error::config(
                "data.classes",
                format!(
                    "`{}` has no labels to select classes by",
                    train_full.input.name()
                ),
            )
        })?;
        let idx: Vec<usize> = (0..labels.len())
            .filter(|&i| classes.contains(&labels[i]))
            .collect();
        if idx.is_empty() {
            return Err(Error::config(
                "data.classes",
                format!("no training samples of classes {classes:?}"),
            ));
        }
        train_full = train_full.subset(&idx);
    }
    if let Some(limit) = cfg.limit {
        let idx: Vec<usize> = (0..limit.min(train_full.len())).collect();
        train_full = train_full.subset(&idx);
    }
    let (train_idx, val_idx) =
        split_idx(train_full.len(), cfg.validation_fraction, &mut rng, false);
    let mut train = train_full.subset(&train_idx);
    let mut val = train_full.subset(&val_idx);
    let mut test = test;
    if train.is_empty() {
        return Err(Error::config(
            "data",
            format!("no training samples left in `{description}`"),
        ));
    }
    check_fits(model, &train.input)?;
    check_fits(model, &test.input)?;
    if let Some(t) = &train.target {
        check_fits(model, t)?;
    }
    let normalizer = Normalizer::fit(cfg.normalize, &train.input, cfg.per_feature)?;
    for part in [&mut train, &mut val, &mut test] {
        normalizer.apply_to(&mut part.input)?;
        if let Some(t) = &mut part.target {
            normalizer.apply_to(t)?;
        }
    }
    if cfg.binarize {
        let mut brng = ae_data::rng(seed ^ 0xB1_0A21);
        for part in [&mut val, &mut test] {
            ae_data::binarize(part.input.data_mut(), &mut brng);
        }
    }
    Ok(Prepared {
        train,
        val,
        test,
        normalizer,
        description,
    })
}
