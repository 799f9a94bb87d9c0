//! The error type of `ae-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `ae-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model configuration is invalid; `field` names the offending setting.
    #[error("invalid model config: `{field}`: {reason}")]
    Config {
        /// The config field (dotted path) that is wrong.
        field: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// A tensor given to a model does not have the shape the model expects.
    #[error("{what}: expected shape {expected}, found {found:?}")]
    Shape {
        /// Which input was wrong (`input`, `latent`, ...).
        what: &'static str,
        /// The expected shape, in words (`N x 1 x 28 x 28`).
        expected: String,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A checkpoint file is unreadable, malformed, or does not match its config.
    #[error("{}: {reason}", path.display())]
    Checkpoint {
        /// The file that is wrong.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from candle's tensor operations.
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

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Checkpoint {
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
