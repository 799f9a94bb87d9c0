//! Typed errors of the codec.

/// Everything that can go wrong compressing or decompressing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not start with the expected magic.
    #[error("not an ae compressed file: expected magic {expected}, found bytes {found}")]
    Magic {
        /// The magic that was expected (`AEC` or `AEA`).
        expected: String,
        /// The first bytes found, in hex.
        found: String,
    },
    /// Written by a newer ae.
    #[error("format version {found} is not supported (this ae reads up to {supported})")]
    Version {
        /// Version in the file.
        found: u8,
        /// Newest version this crate reads.
        supported: u8,
    },
    /// Compressed with another model.
    #[error(
        "made by another model: the file's model digest is {found}, this model's is {expected}"
    )]
    WrongModel {
        /// Digest of the model used for decoding.
        expected: String,
        /// Digest stored in the file.
        found: String,
    },
    /// The bytes end early.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The bytes are inconsistent (checksum, sizes, payload).
    #[error("corrupted: {0}")]
    Corrupt(String),
    /// The model cannot serve as a codec.
    #[error("not a codec: {0}")]
    NotACodec(String),
    /// An image the codec cannot take.
    #[error("image: {0}")]
    Image(String),
    /// From the model.
    #[error(transparent)]
    Core(#[from] ae_core::Error),
    /// From a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
