//! The error type of `ae-train`.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, training or evaluating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid training setting.
    #[error("invalid training config: `{field}`: {reason}")]
    Config {
        /// The setting (dotted path).
        field: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// A config file that cannot be parsed.
    #[error("{}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The data does not fit the model.
    #[error("data does not fit the model: {0}")]
    DataMismatch(String),
    /// The loss became NaN or infinite.
    #[error(
        "the loss became {value} at epoch {epoch}, batch {batch}; training stopped, the last good checkpoint (epoch {last_good}) is kept"
    )]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The value seen.
        value: f32,
        /// The last completed epoch whose checkpoint is on disk (0: none).
        last_good: usize,
    },
    /// A run directory that cannot be resumed or written.
    #[error("{}: {reason}", path.display())]
    RunDir {
        /// The directory or file.
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

    pub(crate) fn run_dir(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::RunDir {
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
