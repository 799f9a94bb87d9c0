//! The IDX format of MNIST and Fashion-MNIST (unsigned bytes), raw or gzip.
//!
//! Layout: two zero bytes, a type byte (`0x08` = unsigned byte), a rank byte,
//! `rank` big-endian u32 sizes, then the values in row-major order.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// Sizes, outermost first (`[n, 28, 28]` for MNIST images).
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// Most bytes a (decompressed) IDX file may hold: 4 GiB.
const MAX_BYTES: u64 = 1 << 32;

/// Reads an IDX file, gzip-compressed or not (detected by content).
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|reason| Error::format(path, reason))
}

/// Parses IDX bytes; the error says what was expected and found.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<Idx, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "truncated: {} bytes, an IDX header needs at least 4",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "wrong magic number: expected 00 00 08 <rank>, found {:02x} {:02x} {:02x} {:02x}",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "unsupported IDX value type 0x{:02x}: only unsigned bytes (0x08) are supported",
            bytes[2]
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(format!("IDX rank must be 1 to 4, found {rank}"));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(format!(
            "truncated header: {} bytes, expected {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("sizes {dims:?} overflow"))?;
    let expected = header + n;
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(format!(
            "{what}: sizes {dims:?} need {expected} bytes, found {}",
            bytes.len()
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an [`Idx`] as bytes.
pub fn encode_idx(idx: &Idx) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, idx.dims.len() as u8];
    for &d in &idx.dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend(&idx.data);
    out
}

/// Writes an IDX file (gzip-compressed when `gzip`), atomically.
pub fn write_idx(path: &Path, idx: &Idx, gzip: bool) -> Result<()> {
    let n: usize = idx.dims.iter().product();
    if n != idx.data.len() || idx.dims.is_empty() || idx.dims.len() > 4 {
        return Err(Error::config(
            "idx",
            format!("sizes {:?} do not fit {} values", idx.dims, idx.data.len()),
        ));
    }
    let raw = encode_idx(idx);
    let bytes = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).map_err(|e| Error::io(path, e))?;
        enc.finish().map_err(|e| Error::io(path, e))?
    } else {
        raw
    };
    crate::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let idx = Idx {
            dims: vec![2, 3],
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let bytes = encode_idx(&idx);
        assert_eq!(parse_idx(&bytes).unwrap(), idx);
        assert!(
            parse_idx(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("truncated")
        );
        let mut more = bytes.clone();
        more.push(0);
        assert!(parse_idx(&more).unwrap_err().contains("trailing"));
        let mut magic = bytes.clone();
        magic[0] = 1;
        assert!(parse_idx(&magic).unwrap_err().contains("magic"));
        let mut ty = bytes;
        ty[2] = 0x0d;
        assert!(parse_idx(&ty).unwrap_err().contains("0x0d"));
    }
}
