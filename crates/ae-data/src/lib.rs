//! # ae-data: datasets, batching and noise for ae
//!
//! The data half of ae, model-agnostic (it does not depend on `ae-core`) and
//! offline (no network code; `cargo xtask download` fetches files).
//!
//! - [`idx`]: the IDX format of MNIST (raw or gzip), with magic-number, rank
//!   and length checks; [`Mnist`] and [`FashionMnist`] from a directory;
//!   [`bundled_mnist_sample`], 2,000 real MNIST test digits compiled in.
//! - [`load_image_folder`]: PNG/JPEG folders, gray or RGB, `normal/` and
//!   `abnormal/` subfolders as labels.
//! - [`load_csv_vectors`] for dense models; [`load_series_csv`] and
//!   [`Series::windows`] for 1-D models (the NAB format), with NAB's anomaly
//!   windows as labels ([`load_nab_windows`]).
//! - [`Normalizer`]: min–max or standardisation fitted on training data,
//!   serialisable so it is stored with a model.
//! - [`Dataset`]: samples in memory, seeded shuffling, train/validation
//!   split, batches as candle tensors (`N × C × H × W`, `N × D`, `N × C × L`).
//! - [`Noise`]: Gaussian, salt-and-pepper, pixel and rectangle masking,
//!   speckle; clipped, seeded, the identity at strength 0.
//!
//! ## The bundled sample
//!
//! `assets/sample-{images,labels}-*.gz` hold the first 200 test images of each
//! digit class of MNIST's `t10k` set (2,000 in all, in test-set order; their
//! indices are listed in `assets/sample-indices.txt`). MNIST is by Yann LeCun,
//! Corinna Cortes and Christopher J.C. Burges.
//!
//! ## Features
//!
//! `hub`: datasets from the Hugging Face hub through `candle-datasets` (needs
//! internet; off by default).

mod dataset;
mod error;
mod folder;
pub mod idx;
mod mnist;
mod noise;
mod normalize;
mod tabular;

#[cfg(feature = "hub")]
pub mod hub;

pub use dataset::{Batch, Dataset};
pub use error::{Error, Result};
pub use folder::{ABNORMAL, ColorMode, NORMAL, load_image_files, load_image_folder, read_image};
pub use mnist::{FashionMnist, IDX_FILES, Mnist, Split, bundled_mnist_sample, has_idx_files};
pub use noise::{Noise, binarize, binarize_tensor};
pub use normalize::{NormKind, Normalizer};
pub use tabular::{Series, load_csv_vectors, load_nab_windows, load_series_csv};

/// The random generator of ae (ChaCha8; the same type as `ae_core::Rng`).
pub type Rng = rand_chacha::ChaCha8Rng;

/// A [`Rng`] from a seed.
pub fn rng(seed: u64) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(seed)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
