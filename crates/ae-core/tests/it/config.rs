//! Config files: TOML and JSON, unknown fields, validation messages.

use ae_core::{ConvAeConfig, ConvLatent, ModelConfig};

#[test]
fn toml_model_config_parses_with_defaults() {
    let text = r#"
        kind = "conv"
        in_channels = 3
        height = 32
        width = 48
        channels = [16, 32]
        latent = { kind = "spatial", channels = 8 }
    "#;
    let cfg: ModelConfig = toml::from_str(text).unwrap();
    let ModelConfig::Conv(c) = &cfg else {
        panic!("kind")
    };
    assert_eq!(c.kernel_size, 3);
    assert!(!c.variational);
    assert_eq!(c.latent, ConvLatent::Spatial { channels: 8 });
    assert_eq!(cfg.latent_dims(), vec![8, 8, 12]);
    cfg.validate().unwrap();
}

#[test]
fn unknown_fields_are_rejected_everywhere() {
    let top = "kind = \"dense\"\ninput_dim = 4\nlatent_dim = 2\nlatnet = 3\n";
    let e = toml::from_str::<ModelConfig>(top).unwrap_err().to_string();
    assert!(e.contains("latnet"), "{e}");
    let nested = "kind = \"conv\"\nin_channels = 1\nheight = 8\nwidth = 8\nchannels = [2]\nlatent = { kind = \"dense\", dim = 2, size = 3 }\n";
    let e = toml::from_str::<ModelConfig>(nested)
        .unwrap_err()
        .to_string();
    assert!(e.contains("size"), "{e}");
    let kind = "kind = \"transformer\"\n";
    assert!(toml::from_str::<ModelConfig>(kind).is_err());
}

#[test]
fn json_round_trip_is_lossless() {
    for name in ae_core::PRESETS {
        let cfg = ModelConfig::preset(name).unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    }
}

#[test]
fn validation_errors_name_the_field_and_numbers() {
    let mut c = ConvAeConfig::mnist();
    c.channels = vec![];
    assert!(c.validate().unwrap_err().to_string().contains("channels"));
    let mut c = ConvAeConfig::mnist();
    c.height = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("height") && e.contains('0'), "{e}");
    let mut c = ConvAeConfig::mnist();
    c.latent = ConvLatent::Dense { dim: 0 };
    assert!(c.validate().unwrap_err().to_string().contains("latent.dim"));
    let mut c = ConvAeConfig::mnist();
    c.channels = vec![8; 17];
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("17") && e.contains("16"), "{e}");
}
