//! Fuzzes the `.aec` / `.aea` decoders: any bytes must give an image or an
//! error, never a panic, a hang or an unbounded allocation.
//!
//! Run: `cargo +nightly fuzz run decode -- -max_total_time=300`
//!
//! The first byte picks the mode. Bit 0 clear: append a valid CRC-32, so the
//! fuzzer gets past the checksum. Bit 1 set: start the bytes with a valid
//! preamble (magic `AEC`, or `AEA` when bit 2 is set, the version and this
//! model's digest), so it reaches the header parser and the rANS decoder.
#![no_main]

use std::sync::OnceLock;

use ae_codec::Codec;
use ae_core::{ConvAeConfig, ConvLatent, Model, ModelConfig};
use libfuzzer_sys::fuzz_target;

fn codec() -> &'static Codec {
    static CODEC: OnceLock<Codec> = OnceLock::new();
    CODEC.get_or_init(|| {
        let cfg = ConvAeConfig {
            channels: vec![4, 4],
            latent: ConvLatent::Spatial { channels: 2 },
            ..ConvAeConfig::mnist_codec()
        };
        let model = Model::new(ModelConfig::Conv(cfg), 0, &candle_core::Device::Cpu)
            .expect("a valid config");
        Codec::new(model).expect("a codec")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let c = codec();
    let mut bytes = Vec::with_capacity(rest.len() + 12);
    if mode & 2 != 0 {
        let magic = if mode & 4 != 0 {
            ae_codec::format::MAGIC_ARCHIVE
        } else {
            ae_codec::format::MAGIC_IMAGE
        };
        bytes.extend_from_slice(magic);
        bytes.push(ae_codec::format::VERSION);
        bytes.extend_from_slice(&c.digest());
    }
    bytes.extend_from_slice(rest);
    if mode & 1 == 0 {
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    let _ = c.decompress(&bytes);
    let _ = c.decompress_archive(&bytes);
});
