//! Fuzzes the `.aec` / `.aea` decoders: any bytes must give an image or an
//! error, never a panic, a hang or an unbounded allocation.
//!
//! Run: `cargo +nightly fuzz run decode -- -max_total_time=300`
//!
//! The first byte picks the mode: odd values feed the bytes as they are;
//! even values append a valid CRC-32 first, so the fuzzer gets past the
//! checksum into the header parser and the rANS decoder.
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
    let mut bytes = rest.to_vec();
    if mode % 2 == 0 {
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    let c = codec();
    let _ = c.decompress(&bytes);
    let _ = c.decompress_archive(&bytes);
});
