//! The fused training step ([`Autoencoder::mse_step`]) against the same
//! step through candle's graph (forward, `layers::mse`, `backward`), and the
//! fused inference ([`Autoencoder::infer`]) against `forward`.

use ae_core::{
    Activation, Autoencoder, Conv1dAeConfig, ConvAeConfig, ConvLatent, Mode, ModelConfig,
    OutputActivation,
};

use crate::{batch, batch_dims, max_abs_diff, model};

/// Checks the fused step's loss and every gradient against candle's graph
/// on a batch of `n`.
fn agrees(cfg: ModelConfig, n: usize, seed: u64) {
    let m = model(cfg.clone(), seed);
    let x = batch(&batch_dims(&m, n), seed + 1);
    let target = batch(&batch_dims(&m, n), seed + 2);
    let step = m
        .mse_step(&x, &target)
        .expect("step")
        .unwrap_or_else(|| panic!("the fused path should take {cfg:?}"));
    let mut rng = ae_core::rng(0);
    let out = m.forward(&x, Mode::Train(&mut rng)).expect("forward");
    let loss = ae_core::layers::mse(&out.reconstruction, &target).expect("mse");
    let want = loss.to_scalar::<f32>().expect("scalar");
    assert!(
        (step.loss - want).abs() <= 1e-5 * want.abs(),
        "loss {} against {want}",
        step.loss
    );
    // Inference: the fused forward pass (batches of at least the thread
    // count) gives forward's values and shapes.
    let inf = m.infer(&x).expect("infer");
    let eval = m.forward(&x, Mode::Eval).expect("forward");
    for (a, b) in [
        (&inf.reconstruction, &eval.reconstruction),
        (inf.latent.z(), eval.latent.z()),
    ] {
        assert_eq!(a.dims(), b.dims());
        let d = max_abs_diff(a, b);
        assert!(d <= 1e-5, "infer differs from forward by {d}");
    }
    let grads = loss.backward().expect("backward");
    let vars = m.trainable_named_vars();
    assert_eq!(step.grads.len(), vars.len());
    for (name, v) in vars {
        let a = step.grads.get(v.as_tensor()).expect("fused gradient");
        let b = grads.get(v.as_tensor()).expect("candle gradient");
        assert_eq!(a.dims(), b.dims(), "{name}");
        let scale = b
            .abs()
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.max(0))
            .and_then(|t| t.to_scalar::<f32>())
            .expect("scale");
        let d = max_abs_diff(a, b);
        assert!(
            d <= 1e-4 * scale + 1e-8,
            "{name}: differs by {d} (largest {scale})"
        );
    }
}

#[test]
fn the_fused_step_matches_candles_graph_on_mnist_conv() {
    // 5: fewer images than a micro-batch; 37: several micro-batches, split
    // unevenly over the threads.
    for n in [1, 5, 37] {
        agrees(ModelConfig::Conv(ConvAeConfig::mnist()), n, 3);
    }
}

#[test]
fn the_fused_step_matches_on_other_shapes() {
    // A spatial latent, several input channels, no output activation.
    agrees(
        ModelConfig::Conv(ConvAeConfig {
            in_channels: 2,
            height: 12,
            width: 8,
            channels: vec![4, 8],
            output_activation: OutputActivation::None,
            latent: ConvLatent::Spatial { channels: 3 },
            ..ConvAeConfig::mnist()
        }),
        6,
        5,
    );
    // Odd sides (no output padding), a kernel of 5.
    agrees(
        ModelConfig::Conv(ConvAeConfig {
            height: 5,
            width: 9,
            channels: vec![3, 5],
            kernel_size: 5,
            latent: ConvLatent::Dense { dim: 7 },
            ..ConvAeConfig::mnist()
        }),
        4,
        7,
    );
    // 1-D.
    agrees(
        ModelConfig::Conv1d(Conv1dAeConfig {
            in_channels: 2,
            length: 20,
            channels: vec![4, 6],
            kernel_size: 3,
            activation: Activation::Relu,
            batch_norm: false,
            output_activation: OutputActivation::Sigmoid,
            latent: ConvLatent::Dense { dim: 5 },
            variational: false,
        }),
        9,
        11,
    );
}

#[test]
fn models_the_fused_step_cannot_run_fall_back() {
    let base = ConvAeConfig {
        height: 12,
        width: 8,
        channels: vec![4, 8],
        ..ConvAeConfig::mnist()
    };
    let refused = [
        ConvAeConfig {
            variational: true,
            ..base.clone()
        },
        ConvAeConfig {
            batch_norm: true,
            ..base.clone()
        },
        ConvAeConfig {
            activation: Activation::Tanh,
            ..base.clone()
        },
        // Sides of different parity: the decoder crops.
        ConvAeConfig {
            width: 10,
            ..base.clone()
        },
    ];
    for cfg in refused {
        let m = model(ModelConfig::Conv(cfg.clone()), 1);
        let x = batch(&batch_dims(&m, 2), 2);
        assert!(m.mse_step(&x, &x).expect("step").is_none(), "{cfg:?}");
    }
    let m = model(ModelConfig::Conv(base), 1);
    let wrong = batch(&[2, 1, 8, 12], 2);
    assert!(m.mse_step(&wrong, &wrong).is_err());
    let x = batch(&[2, 1, 12, 8], 2);
    assert!(m.mse_step(&x, &batch(&[3, 1, 12, 8], 2)).is_err());
    let empty = batch(&[0, 1, 12, 8], 2);
    assert!(m.mse_step(&empty, &empty).is_err());
}
