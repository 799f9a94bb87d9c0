//! MNIST and Fashion-MNIST from a directory of IDX files, and the bundled
//! MNIST sample.

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::idx::{Idx, parse_idx, read_idx};

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The training set (60,000 images for MNIST).
    Train,
    /// The test set (10,000 images for MNIST).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// The number of images the split holds in MNIST and Fashion-MNIST.
    pub fn expected_len(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

/// The four IDX file names of an MNIST-layout dataset, uncompressed.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::io(
        dir.join(format!("{name}.gz")),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("neither {name} nor {name}.gz found (run `cargo xtask download mnist`)"),
        ),
    ))
}

/// `true` when `dir` holds the four IDX files (raw or gzip).
pub fn has_idx_files(dir: &Path) -> bool {
    IDX_FILES.iter().all(|n| find(dir, n).is_ok())
}

fn images_from_idx(
    name: &str,
    images: Idx,
    labels: Idx,
    img_path: &Path,
    lab_path: &Path,
) -> Result<Dataset> {
    if images.dims.len() != 3 || images.dims[1] != 28 || images.dims[2] != 28 {
        return Err(Error::format(
            img_path,
            format!(
                "expected images of N x 28 x 28, found sizes {:?}",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(Error::format(
            lab_path,
            format!(
                "expected {} labels (one per image), found sizes {:?}",
                images.dims[0], labels.dims
            ),
        ));
    }
    if let Some(bad) = labels.data.iter().find(|&&l| l > 9) {
        return Err(Error::format(
            lab_path,
            format!("labels must be 0 to 9, found {bad}"),
        ));
    }
    let data = images.data.iter().map(|&b| f32::from(b) / 255.0).collect();
    let labels = labels.data.iter().map(|&l| u32::from(l)).collect();
    Dataset::new(name, vec![1, 28, 28], data, Some(labels))
}

fn load_split(dir: &Path, split: Split, name: &str) -> Result<Dataset> {
    let img = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let lab = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let images = read_idx(&img)?;
    if images.dims.first() != Some(&split.expected_len()) {
        return Err(Error::format(
            &img,
            format!(
                "expected {} images, found sizes {:?}",
                split.expected_len(),
                images.dims
            ),
        ));
    }
    images_from_idx(
        &format!("{name} {split:?}").to_lowercase(),
        images,
        read_idx(&lab)?,
        &img,
        &lab,
    )
}

/// MNIST handwritten digits: 28×28 grayscale in [0, 1], labels 0–9.
pub struct Mnist;

impl Mnist {
    /// Loads a split from `dir` (the four IDX files, raw or `.gz`).
    ///
    /// Samples are `1 × 28 × 28`.
    pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
        load_split(dir, split, "mnist")
    }
}

/// Fashion-MNIST: the same layout as MNIST, 10 clothing classes.
pub struct FashionMnist;

impl FashionMnist {
    /// Loads a split from `dir` (the four IDX files, raw or `.gz`).
    pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
        load_split(dir, split, "fashion-mnist")
    }
}

static SAMPLE_IMAGES: &[u8] = include_bytes!("../assets/sample-images-idx3-ubyte.gz");
static SAMPLE_LABELS: &[u8] = include_bytes!("../assets/sample-labels-idx1-ubyte.gz");

/// The bundled sample: 2,000 real MNIST test digits, 200 of each class.
///
/// Provenance: the first 200 images of each class in MNIST's `t10k` set, in
/// test-set order (indices in `assets/sample-indices.txt`, 0 to 2318).
pub fn bundled_mnist_sample() -> Result<Dataset> {
    let gunzip = |bytes: &[u8], what: &str| -> Result<Idx> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::format(what, e.to_string()))?;
        parse_idx(&out).map_err(|r| Error::format(what, r))
    };
    let img = Path::new("<bundled sample-images-idx3-ubyte.gz>");
    let lab = Path::new("<bundled sample-labels-idx1-ubyte.gz>");
    images_from_idx(
        "mnist-sample (2,000 bundled test digits)",
        gunzip(SAMPLE_IMAGES, "bundled images")?,
        gunzip(SAMPLE_LABELS, "bundled labels")?,
        img,
        lab,
    )
}
