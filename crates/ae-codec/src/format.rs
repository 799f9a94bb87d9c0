//! The byte layout of `.aec` (one image) and `.aea` (an archive of images)
//! files.
//!
//! ```text
//! .aec  magic "AEC" · version (1 byte) · model digest (4 bytes)
//!       · varint channels · varint height · varint width
//!       · varint latent channels · varint latent height · varint latent width
//!       · payload (rANS words, little-endian u32, the last word's zero high
//!         bytes dropped) · CRC-32 of everything before it (4 bytes, LE)
//! .aea  magic "AEA" · version · model digest
//!       · varint image count · varint number of size runs
//!       · per run: varint images, varint channels, height, width
//!       · varint latent channels
//!       · payload (one rANS stream for all images, in order) · CRC-32
//! ```
//!
//! Latent heights and widths of an archive follow from the image sizes and
//! the model; a single file states them so that a reader can check them.

use crate::error::{Error, Result};

/// Magic bytes of a single-image file.
pub const MAGIC_IMAGE: &[u8; 3] = b"AEC";
/// Magic bytes of an archive.
pub const MAGIC_ARCHIVE: &[u8; 3] = b"AEA";
/// The format version this crate writes and the newest it reads.
pub const VERSION: u8 = 1;
/// Bytes of the model digest stored in each file.
pub const DIGEST_LEN: usize = 4;
/// Largest image a file may describe, in pixels (per channel): a bound on
/// what a decoder allocates for a hostile header.
pub const MAX_PIXELS: u64 = 1 << 22;
/// Most channels an image may have.
pub const MAX_CHANNELS: u64 = 4;
/// Most images an archive may hold.
pub const MAX_IMAGES: u64 = 1 << 20;
/// Most pixels (all images together) an archive may describe.
pub const MAX_ARCHIVE_PIXELS: u64 = 1 << 27;

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A cursor over a file's bytes that reports what it was reading when the
/// bytes run out.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(Error::Truncated(format!(
                "{what} needs {n} bytes at offset {}, {} left",
                self.pos,
                self.bytes.len() - self.pos
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn varint(&mut self, what: &str) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, what)?[0];
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(Error::Corrupt(format!("{what}: varint overflows 64 bits")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Corrupt(format!(
            "{what}: varint longer than 10 bytes"
        )))
    }

    /// A varint in `lo..=hi`.
    pub fn bounded(&mut self, what: &str, lo: u64, hi: u64) -> Result<u64> {
        let v = self.varint(what)?;
        if v < lo || v > hi {
            return Err(Error::Corrupt(format!(
                "{what} is {v}, expected {lo} to {hi}"
            )));
        }
        Ok(v)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        s
    }
}

/// Checks that `bytes` start with `magic`, before anything else is read, so
/// a foreign file is named as such rather than as a damaged one.
pub(crate) fn check_magic(bytes: &[u8], magic: &[u8; 3]) -> Result<()> {
    let head = &bytes[..bytes.len().min(3)];
    if head != magic {
        return Err(Error::Magic {
            expected: String::from_utf8_lossy(magic).into_owned(),
            found: hex(head),
        });
    }
    Ok(())
}

/// Splits off and checks the trailing CRC-32: returns the body.
pub(crate) fn check_crc(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() < 4 {
        return Err(Error::Truncated(format!(
            "{} bytes is shorter than any compressed file",
            bytes.len()
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(Error::Corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the file is damaged or truncated"
        )));
    }
    Ok(body)
}

/// Appends the CRC-32 of `out` to it.
pub(crate) fn push_crc(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Reads version and digest after the magic (which [`check_magic`] has
/// checked) and checks them.
pub(crate) fn read_preamble(r: &mut Reader<'_>, digest: &[u8; DIGEST_LEN]) -> Result<()> {
    r.take(3, "magic")?;
    let version = r.take(1, "version")?[0];
    if version == 0 || version > VERSION {
        return Err(Error::Version {
            found: version,
            supported: VERSION,
        });
    }
    let d = r.take(DIGEST_LEN, "model digest")?;
    if d != digest {
        return Err(Error::WrongModel {
            expected: hex(digest),
            found: hex(d),
        });
    }
    Ok(())
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serialises rANS words to bytes, dropping the last word's zero high bytes
/// (the stack's top word is never zero, so they can be restored).
pub(crate) fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    while out.len() % 4 != 1 && out.last() == Some(&0) {
        out.pop();
    }
    // A whole trailing word of zeros cannot occur: rANS never ends on one.
    out
}

/// The inverse of [`words_to_bytes`].
pub(crate) fn bytes_to_words(bytes: &[u8]) -> Result<Vec<u32>> {
    if bytes.is_empty() {
        return Err(Error::Truncated("the payload is empty".into()));
    }
    let words = bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect::<Vec<_>>();
    if words.last() == Some(&0) {
        return Err(Error::Corrupt("the payload ends in a zero word".into()));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader::new(&b).varint("v").unwrap(), v);
        }
        assert!(Reader::new(&[0xff; 11]).varint("v").is_err());
        assert!(Reader::new(&[0x80]).varint("v").is_err());
    }

    #[test]
    fn words_survive_dropping_zero_high_bytes() {
        for words in [
            vec![1u32],
            vec![7, 0x100],
            vec![0, 0x00ff_0000],
            vec![5, 0x8000_0000],
        ] {
            let b = words_to_bytes(&words);
            assert_eq!(bytes_to_words(&b).unwrap(), words, "{b:?}");
        }
        assert_eq!(words_to_bytes(&[9, 1]).len(), 5);
    }
}
