//! ae-codec: round trips, file format checks, hostile inputs.

use ae_codec::{Codec, Error, Image, format};
use ae_core::{ConvAeConfig, Model, ModelConfig};
use candle_core::Device;
use proptest::prelude::*;

fn codec(seed: u64) -> Codec {
    let cfg = ConvAeConfig {
        channels: vec![8, 8],
        latent: ae_core::ConvLatent::Spatial { channels: 4 },
        ..ConvAeConfig::mnist_codec()
    };
    Codec::new(Model::new(ModelConfig::Conv(cfg), seed, &Device::Cpu).unwrap()).unwrap()
}

fn image(h: usize, w: usize, seed: u64) -> Image {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..h * w)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32;
            (((i % w) as f32 / w as f32) * 0.7 + noise * 0.3).clamp(0.0, 1.0)
        })
        .collect();
    Image::new(1, h, w, data).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Compress → decompress gives back exactly the encoder's integers and
    /// the decoder's reconstruction of them, for any image size.
    #[test]
    fn round_trip_is_exact(h in 1usize..=40, w in 1usize..=40, seed in 0u64..1000) {
        let c = codec(seed % 3);
        let im = image(h, w, seed);
        let bytes = c.compress(&im).unwrap();
        let d = c.decompress(&bytes).unwrap();
        let want = c.quantize(&[&im]).unwrap().remove(0);
        prop_assert_eq!(&d.symbols, &want);
        let rec = c.reconstruct(&[&want], h, w).unwrap().remove(0);
        prop_assert_eq!((d.image.height, d.image.width), (h, w));
        prop_assert_eq!(d.image.data, rec.data);
    }

    /// Any bytes at all: an error or an image, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let c = codec(0);
        let _ = c.decompress(&bytes);
        let _ = c.decompress_archive(&bytes);
    }

    /// Every truncation and every single-byte change of a real file is an
    /// error (the checksum), never a panic or a wrong image.
    #[test]
    fn damaged_files_are_errors(cut in 0usize..1000, flip in 0usize..1000, bit in 0u8..8) {
        let c = codec(1);
        let bytes = c.compress(&image(28, 28, 5)).unwrap();
        let cut = cut % bytes.len();
        prop_assert!(c.decompress(&bytes[..cut]).is_err());
        let mut bad = bytes.clone();
        let i = flip % bad.len();
        bad[i] ^= 1 << bit;
        prop_assert!(c.decompress(&bad).is_err());
    }
}

#[test]
fn archives_round_trip_mixed_sizes_in_order() {
    let c = codec(2);
    let images: Vec<Image> = [(28, 28), (28, 28), (13, 30), (28, 28)]
        .iter()
        .enumerate()
        .map(|(i, &(h, w))| image(h, w, i as u64))
        .collect();
    let bytes = c.compress_archive(&images).unwrap();
    let back = c.decompress_archive(&bytes).unwrap();
    assert_eq!(back.len(), images.len());
    for (im, d) in images.iter().zip(&back) {
        let single = c.decompress(&c.compress(im).unwrap()).unwrap();
        assert_eq!(d.symbols, single.symbols);
        assert_eq!(d.image, single.image);
    }
    // One header for all: smaller than the files together.
    let separate: usize = images.iter().map(|im| c.compress(im).unwrap().len()).sum();
    assert!(bytes.len() < separate, "{} vs {separate}", bytes.len());
    assert!(
        c.decompress_archive(&c.compress_archive(&[]).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn another_model_is_refused_by_digest() {
    let (a, b) = (codec(0), codec(1));
    assert_ne!(a.digest(), b.digest());
    let bytes = a.compress(&image(28, 28, 0)).unwrap();
    match b.decompress(&bytes) {
        Err(Error::WrongModel { expected, found }) => {
            assert_eq!(found, format::hex(&a.digest()));
            assert_eq!(expected, format::hex(&b.digest()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn foreign_and_future_files_say_what_they_are() {
    let c = codec(0);
    let e = c.decompress(b"\x89PNG\r\n\x1a\n and so on").unwrap_err();
    assert!(matches!(e, Error::Magic { .. }), "{e}");
    assert!(e.to_string().contains("not an ae compressed file"), "{e}");
    // A version from the future, with a valid checksum.
    let mut bytes = c.compress(&image(8, 8, 0)).unwrap();
    bytes.truncate(bytes.len() - 4);
    bytes[3] = format::VERSION + 1;
    let crc = crc(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(c.decompress(&bytes), Err(Error::Version { .. })));
    // A single-image reader given an archive, and the other way round.
    let archive = c.compress_archive(&[image(8, 8, 0)]).unwrap();
    assert!(matches!(c.decompress(&archive), Err(Error::Magic { .. })));
}

/// A header that claims a huge image (with a valid checksum) is refused
/// before anything is allocated for it.
#[test]
fn oversized_headers_are_refused() {
    let c = codec(0);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(format::MAGIC_IMAGE);
    bytes.push(format::VERSION);
    bytes.extend_from_slice(&c.digest());
    for v in [1u64, 1 << 20, 1 << 20, 4, 1 << 18, 1 << 18] {
        format::put_varint(&mut bytes, v);
    }
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let crc = crc(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let e = c.decompress(&bytes).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
}

#[test]
fn wrong_images_and_models_are_typed_errors() {
    let c = codec(0);
    assert!(matches!(
        Image::new(1, 2, 2, vec![0.0; 3]),
        Err(Error::Image(_))
    ));
    assert!(matches!(
        Image::new(1, 1, 1, vec![f32::NAN]),
        Err(Error::Image(_))
    ));
    let rgb = Image::new(3, 4, 4, vec![0.5; 48]).unwrap();
    assert!(matches!(c.compress(&rgb), Err(Error::Image(_))));
    let plain = Model::new(ModelConfig::Conv(ConvAeConfig::mnist()), 0, &Device::Cpu).unwrap();
    assert!(matches!(Codec::new(plain), Err(Error::NotACodec(_))));
}

fn crc(bytes: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: an independent check of the format's checksum.
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}
