//! The error type of `ae-anomaly`.

use std::path::PathBuf;

/// Everything that can go wrong while scoring or thresholding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid setting or input.
    #[error("invalid `{field}`: {reason}")]
    Config {
        /// The setting.
        field: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// The data do not fit the model.
    #[error("data do not fit the model: {0}")]
    Mismatch(String),
    /// A file that is wrong.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// From the model crate.
    #[error(transparent)]
    Core(#[from] ae_core::Error),
    /// From the data crate.
    #[error(transparent)]
    Data(#[from] ae_data::Error),
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
