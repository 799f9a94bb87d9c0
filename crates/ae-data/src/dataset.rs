//! [`Dataset`]: samples of one shape held in memory as f32, with optional
//! labels and, for time-series windows, their start times; batching into
//! candle tensors.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;

use crate::Rng;
use crate::error::{Error, Result};

/// A set of samples of one shape (`[C, H, W]`, `[D]` or `[C, L]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    name: String,
    sample_dims: Vec<usize>,
    data: Vec<f32>,
    labels: Option<Vec<u32>>,
    /// One name per sample: a file name, or a window's start time.
    keys: Option<Vec<String>>,
}

impl Dataset {
    /// A dataset from flat values; `data.len()` must be a multiple of the
    /// per-sample size and the labels (if any) one per sample.
    pub fn new(
        name: impl Into<String>,
        sample_dims: Vec<usize>,
        data: Vec<f32>,
        labels: Option<Vec<u32>>,
    ) -> Result<Self> {
        let per: usize = sample_dims.iter().product();
        if per == 0 || !data.len().is_multiple_of(per) {
            return Err(Error::config(
                "dataset",
                format!(
                    "{} values do not split into samples of {sample_dims:?}",
                    data.len()
                ),
            ));
        }
        let n = data.len() / per;
        if let Some(l) = &labels
            && l.len() != n
        {
            return Err(Error::config(
                "labels",
                format!("{} labels for {n} samples", l.len()),
            ));
        }
        Ok(Dataset {
            name: name.into(),
            sample_dims,
            data,
            labels,
            keys: None,
        })
    }

    /// Attaches one key per sample (file names, window start times).
    pub fn with_keys(mut self, keys: Vec<String>) -> Result<Self> {
        if keys.len() != self.len() {
            return Err(Error::config(
                "keys",
                format!("{} keys for {} samples", keys.len(), self.len()),
            ));
        }
        self.keys = Some(keys);
        Ok(self)
    }

    /// A short description of where the data came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.len() / self.per_sample()
    }

    /// `true` when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Per-sample shape.
    pub fn sample_dims(&self) -> &[usize] {
        &self.sample_dims
    }

    /// Values per sample.
    pub fn per_sample(&self) -> usize {
        self.sample_dims.iter().product()
    }

    /// All values, sample after sample.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable access to all values (for normalisation in place).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let p = self.per_sample();
        &self.data[i * p..(i + 1) * p]
    }

    /// Class labels, when known.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// Per-sample keys (file names or window start times), when known.
    pub fn keys(&self) -> Option<&[String]> {
        self.keys.as_deref()
    }

    /// This dataset's samples followed by `other`'s (same sample shape;
    /// labels and keys kept only when both have them).
    pub fn concat(&self, other: &Dataset) -> Result<Dataset> {
        if self.sample_dims != other.sample_dims {
            return Err(Error::config(
                "dataset",
                format!(
                    "cannot join samples of {:?} and {:?}",
                    self.sample_dims, other.sample_dims
                ),
            ));
        }
        fn join<T: Clone>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> Option<Vec<T>> {
            match (a, b) {
                (Some(a), Some(b)) => Some([a.as_slice(), b.as_slice()].concat()),
                _ => None,
            }
        }
        Ok(Dataset {
            name: self.name.clone(),
            sample_dims: self.sample_dims.clone(),
            data: [self.data.as_slice(), other.data.as_slice()].concat(),
            labels: join(&self.labels, &other.labels),
            keys: join(&self.keys, &other.keys),
        })
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let p = self.per_sample();
        let mut data = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            data.extend_from_slice(self.sample(i));
        }
        Dataset {
            name: self.name.clone(),
            sample_dims: self.sample_dims.clone(),
            data,
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            keys: self
                .keys
                .as_ref()
                .map(|k| indices.iter().map(|&i| k[i].clone()).collect()),
        }
    }

    /// The first `n` samples (all if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Only the samples whose label is in `classes` (for one-class training).
    /// Fails if the dataset has no labels.
    pub fn filter_classes(&self, classes: &[u32]) -> Result<Dataset> {
        let labels = self.labels.as_ref().ok_or_else(|| {
            Error::config(
                "classes",
                format!("dataset `{}` has no labels to filter by", self.name),
            )
        })?;
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&labels[i]))
            .collect();
        let mut d = self.subset(&idx);
        d.name = format!("{} (classes {classes:?})", self.name);
        Ok(d)
    }

    /// A seeded random split into `(train, validation)` with
    /// `round(len · validation_fraction)` validation samples.
    pub fn split(&self, validation_fraction: f64, rng: &mut Rng) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&validation_fraction) {
            return Err(Error::config(
                "validation_fraction",
                format!("must be in [0, 1), found {validation_fraction}"),
            ));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(rng);
        let n_val = (self.len() as f64 * validation_fraction).round() as usize;
        let (val, train) = idx.split_at(n_val);
        Ok((self.subset(train), self.subset(val)))
    }

    /// Samples `indices` as one tensor `len × sample_dims…`.
    pub fn tensor(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let p = self.per_sample();
        let mut v = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            v.extend_from_slice(self.sample(i));
        }
        let mut shape = vec![indices.len()];
        shape.extend(&self.sample_dims);
        Ok(Tensor::from_vec(v, shape, device)?)
    }

    /// The batch orders of one epoch: indices shuffled with `rng` (or in order
    /// when `None`), cut into batches of `batch_size`; the last partial batch is
    /// dropped when `drop_last`.
    pub fn batch_indices(
        &self,
        batch_size: usize,
        rng: Option<&mut Rng>,
        drop_last: bool,
    ) -> Result<Vec<Vec<usize>>> {
        if batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1, found 0"));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        if let Some(rng) = rng {
            idx.shuffle(rng);
        }
        Ok(idx
            .chunks(batch_size)
            .filter(|c| !drop_last || c.len() == batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    /// One epoch of batches as tensors; see [`Dataset::batch_indices`].
    pub fn batches<'a>(
        &'a self,
        batch_size: usize,
        rng: Option<&mut Rng>,
        drop_last: bool,
        device: &'a Device,
    ) -> Result<impl Iterator<Item = Result<Batch>> + 'a> {
        let order = self.batch_indices(batch_size, rng, drop_last)?;
        Ok(order.into_iter().map(move |indices| {
            Ok(Batch {
                inputs: self.tensor(&indices, device)?,
                labels: self
                    .labels
                    .as_ref()
                    .map(|l| indices.iter().map(|&i| l[i]).collect()),
                indices,
            })
        }))
    }
}

/// One batch: the samples' indices, their values as a tensor
/// (`N × sample_dims…`), and their labels when known.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Indices into the dataset.
    pub indices: Vec<usize>,
    /// `N × sample_dims…`.
    pub inputs: Tensor,
    /// Labels, when the dataset has them.
    pub labels: Option<Vec<u32>>,
}
