//! Property tests on shape invariants for random valid and invalid configs.

use ae_core::{
    Activation, Autoencoder, Conv1dAeConfig, ConvAeConfig, ConvLatent, DenseAeConfig, Encoder,
    Latent, Mode, Model, ModelConfig, OutputActivation,
};
use candle_core::Device;
use proptest::prelude::*;

use crate::{batch, batch_dims, max_abs_diff, model};

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::LeakyRelu),
        Just(Activation::Gelu),
        Just(Activation::Silu),
        Just(Activation::Tanh),
        Just(Activation::Elu),
    ]
}

fn output_activation() -> impl Strategy<Value = OutputActivation> {
    prop_oneof![
        Just(OutputActivation::Sigmoid),
        Just(OutputActivation::Tanh),
        Just(OutputActivation::None),
    ]
}

fn conv_latent() -> impl Strategy<Value = ConvLatent> {
    prop_oneof![
        (1usize..=12).prop_map(|dim| ConvLatent::Dense { dim }),
        (1usize..=4).prop_map(|channels| ConvLatent::Spatial { channels }),
    ]
}

prop_compose! {
    fn conv_config()(
        in_channels in 1usize..=3, height in 1usize..=33, width in 1usize..=33,
        channels in prop::collection::vec(1usize..=6, 1..=4),
        kernel_size in prop_oneof![Just(1usize), Just(3), Just(5)],
        activation in activation(), batch_norm: bool,
        output_activation in output_activation(), latent in conv_latent(), variational: bool,
    ) -> ConvAeConfig {
        ConvAeConfig { in_channels, height, width, channels, kernel_size, activation,
            batch_norm, output_activation, latent, variational, entropy_bottleneck: None, pixel_context: None }
    }
}

prop_compose! {
    fn conv1d_config()(
        in_channels in 1usize..=3, length in 1usize..=70,
        channels in prop::collection::vec(1usize..=6, 1..=4),
        kernel_size in prop_oneof![Just(1usize), Just(3), Just(5), Just(7)],
        activation in activation(), batch_norm: bool,
        output_activation in output_activation(), latent in conv_latent(), variational: bool,
    ) -> Conv1dAeConfig {
        Conv1dAeConfig { in_channels, length, channels, kernel_size, activation,
            batch_norm, output_activation, latent, variational }
    }
}

prop_compose! {
    fn dense_config()(
        input_dim in 1usize..=50, hidden in prop::collection::vec(1usize..=20, 0..=3),
        latent_dim in 1usize..=10, activation in activation(), batch_norm: bool,
        output_activation in output_activation(), variational: bool,
    ) -> DenseAeConfig {
        DenseAeConfig { input_dim, hidden, latent_dim, activation, batch_norm,
            output_activation, variational }
    }
}

fn any_config() -> impl Strategy<Value = ModelConfig> {
    prop_oneof![
        conv_config().prop_map(ModelConfig::Conv),
        conv1d_config().prop_map(ModelConfig::Conv1d),
        dense_config().prop_map(ModelConfig::Dense),
    ]
}

/// The shape promised by a config, independently of the model: each stage
/// halves a side rounding up.
fn promised_latent(cfg: &ModelConfig) -> Vec<usize> {
    let conv = |spatial: Vec<usize>, depth: usize, latent: ConvLatent| match latent {
        ConvLatent::Dense { dim } => vec![dim],
        ConvLatent::Spatial { channels } => {
            let mut d = vec![channels];
            d.extend(spatial.iter().map(|&n| {
                let mut n = n;
                for _ in 0..depth {
                    n = n.div_ceil(2);
                }
                n
            }));
            d
        }
    };
    match cfg {
        ModelConfig::Conv(c) => conv(vec![c.height, c.width], c.channels.len(), c.latent),
        ModelConfig::Conv1d(c) => conv(vec![c.length], c.channels.len(), c.latent),
        ModelConfig::Dense(c) => vec![c.latent_dim],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reconstruction_has_input_shape_and_latent_the_promised_shape(
        cfg in any_config(), n in 1usize..=3, seed: u64, train: bool,
    ) {
        let m = model(cfg.clone(), seed);
        let x = batch(&batch_dims(&m, n), seed);
        let mut rng = ae_core::rng(seed);
        let mode = if train { Mode::Train(&mut rng) } else { Mode::Eval };
        let out = m.forward(&x, mode).unwrap();
        prop_assert_eq!(out.reconstruction.dims(), x.dims());
        let mut want = vec![n];
        want.extend(promised_latent(&cfg));
        prop_assert_eq!(out.latent.z().dims(), &want[..]);
        prop_assert_eq!(m.latent_dims(), &want[1..]);
        prop_assert_eq!(out.latent.is_gaussian(), cfg.is_variational());
        if let Latent::Gaussian { z, mu, logvar } = &out.latent {
            prop_assert_eq!(mu.dims(), z.dims());
            prop_assert_eq!(logvar.dims(), z.dims());
            let d = max_abs_diff(z, mu);
            if train {
                prop_assert!(d > 0.0, "a training sample must differ from the mean");
            } else {
                prop_assert_eq!(d, 0.0, "evaluation must decode the mean");
            }
        }
        let values = out.reconstruction.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        prop_assert!(values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn decode_maps_latent_shape_to_input_shape(cfg in any_config(), n in 1usize..=3, seed: u64) {
        use ae_core::Decoder;
        let m = model(cfg, seed);
        let mut zd = vec![n];
        zd.extend(m.latent_dims());
        let z = batch(&zd, seed);
        let y = m.decode(&z, false).unwrap();
        prop_assert_eq!(y.dims(), &batch_dims(&m, n)[..]);
    }

    #[test]
    fn wrong_input_shapes_are_errors_not_panics(cfg in any_config(), extra in 1usize..=3) {
        let m = model(cfg, 0);
        let mut dims = batch_dims(&m, 2);
        let last = dims.len() - 1;
        dims[last] += extra;
        let x = batch(&dims, 1);
        let err = m.forward(&x, Mode::Eval).unwrap_err();
        prop_assert!(matches!(err, ae_core::Error::Shape { .. }), "{err}");
    }

    #[test]
    fn random_configs_are_ok_or_err_never_panic(
        in_channels in 0usize..=3, height in 0usize..=20, width in 0usize..=20,
        channels in prop::collection::vec(0usize..=4, 0..=4),
        kernel_size in 0usize..=6, dim in 0usize..=6, spatial: bool, variational: bool,
    ) {
        let latent = if spatial { ConvLatent::Spatial { channels: dim } } else { ConvLatent::Dense { dim } };
        let cfg = ConvAeConfig { in_channels, height, width, channels: channels.clone(), kernel_size,
            activation: Activation::Relu, batch_norm: false, output_activation: OutputActivation::Sigmoid,
            latent, variational, entropy_bottleneck: None, pixel_context: None };
        let expect_ok = in_channels > 0 && height > 0 && width > 0 && !channels.is_empty()
            && channels.iter().all(|&c| c > 0) && kernel_size % 2 == 1 && dim > 0;
        prop_assert_eq!(cfg.validate().is_ok(), expect_ok);
        let built = Model::new(ModelConfig::Conv(cfg), 0, &Device::Cpu);
        prop_assert_eq!(built.is_ok(), expect_ok);
        if let Err(e) = built {
            prop_assert!(matches!(e, ae_core::Error::Config { .. }), "{e}");
        }
    }
}

#[test]
fn mnist_presets_have_the_documented_shapes() {
    for name in ae_core::PRESETS {
        let cfg = ModelConfig::preset(name).unwrap();
        let m = model(cfg.clone(), 0);
        let x = batch(&batch_dims(&m, 2), 0);
        let out = m.forward(&x, Mode::Eval).unwrap();
        assert_eq!(out.reconstruction.dims(), x.dims(), "{name}");
        if *name == "mnist-codec" {
            assert_eq!(m.latent_dims(), &[16, 7, 7], "{name}");
            let Latent::Quantized { z, bits, .. } = &out.latent else {
                panic!("{name}: a codec's latent is quantised");
            };
            let zv = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(zv.iter().all(|v| v.fract() == 0.0), "{name}: integers");
            assert_eq!(bits.dims(), &[2], "{name}");
        } else if name.starts_with("mnist") {
            assert_eq!(m.latent_dims(), &[32], "{name}");
            assert_eq!(x.elem_count() / 2, 784, "{name}");
        }
        assert_eq!(m.is_variational(), name.ends_with("-vae"), "{name}");
    }
    assert!(ModelConfig::preset("nope").is_err());
}

#[test]
fn dense_model_accepts_images_and_answers_in_their_shape() {
    let m = model(ModelConfig::Dense(DenseAeConfig::mnist()), 0);
    let x = batch(&[3, 1, 28, 28], 0);
    let out = m.forward(&x, Mode::Eval).unwrap();
    assert_eq!(out.reconstruction.dims(), &[3, 1, 28, 28]);
}

#[test]
fn mnist_conv_matches_the_reference_parameter_count() {
    // Conv(1→32) 320 + Conv(32→64) 18,496 + Linear(3136→32) 100,384 +
    // Linear(32→3136) 103,488 + ConvT(64→32) 18,464 + ConvT(32→1) 289.
    let m = model(ModelConfig::Conv(ConvAeConfig::mnist()), 0);
    assert_eq!(m.num_parameters(), 241_441);
}

#[test]
fn odd_and_mixed_parity_sides_reconstruct_exactly() {
    for (h, w) in [(28, 28), (27, 28), (28, 27), (1, 1), (5, 64), (33, 17)] {
        let cfg = ConvAeConfig {
            height: h,
            width: w,
            channels: vec![4, 4, 4],
            ..ConvAeConfig::mnist()
        };
        let m = model(ModelConfig::Conv(cfg), 0);
        let x = batch(&[2, 1, h, w], 0);
        let out = m.forward(&x, Mode::Eval).unwrap();
        assert_eq!(out.reconstruction.dims(), &[2, 1, h, w]);
    }
}

#[test]
fn same_seed_same_weights_and_same_samples() {
    let cfg = ModelConfig::Conv(ConvAeConfig::mnist_vae());
    let (a, b, c) = (model(cfg.clone(), 7), model(cfg.clone(), 7), model(cfg, 8));
    let x = batch(&[4, 1, 28, 28], 3);
    let run = |m: &Model| {
        let mut rng = ae_core::rng(11);
        m.forward(&x, Mode::Train(&mut rng)).unwrap().reconstruction
    };
    assert_eq!(max_abs_diff(&run(&a), &run(&b)), 0.0);
    assert!(max_abs_diff(&run(&a), &run(&c)) > 0.0);
}
