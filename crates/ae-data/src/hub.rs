//! Datasets from the Hugging Face hub (feature `hub`; needs internet).

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Downloads MNIST through `candle-datasets` and returns `(train, test)`.
pub fn mnist() -> Result<(Dataset, Dataset)> {
    let m =
        candle_datasets::vision::mnist::load().map_err(|e| Error::config("hub", e.to_string()))?;
    let to = |name: &str,
              images: &candle_core::Tensor,
              labels: &candle_core::Tensor|
     -> Result<Dataset> {
        let data = images.flatten_all()?.to_vec1::<f32>()?;
        let labels = labels.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
        Dataset::new(name, vec![1, 28, 28], data, Some(labels))
    };
    Ok((
        to("mnist train (hub)", &m.train_images, &m.train_labels)?,
        to("mnist test (hub)", &m.test_images, &m.test_labels)?,
    ))
}
