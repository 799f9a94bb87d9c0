//! The pixel context (an autoregressive decoder): causality, batching of
//! latent samples, generation, and config validation.

use ae_core::{
    Autoencoder, ConvAeConfig, ConvLatent, Decoder, Encoder, Mode, ModelConfig, PixelContextConfig,
};
use candle_core::{Device, IndexOp, Tensor};
use proptest::prelude::*;

use crate::{batch, max_abs_diff, model};

fn config(c: usize, h: usize, w: usize, layers: usize, first_kernel: usize) -> ModelConfig {
    ModelConfig::Conv(ConvAeConfig {
        in_channels: c,
        height: h,
        width: w,
        channels: vec![4, 6],
        latent: ConvLatent::Dense { dim: 3 },
        variational: true,
        pixel_context: Some(PixelContextConfig {
            channels: 5,
            layers,
            first_kernel,
        }),
        ..ConvAeConfig::mnist()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Changing input pixel `p` (all its channels) changes no output at a
    /// pixel up to and including `p` in raster order: output `i` depends on
    /// the inputs before `i` only.
    #[test]
    fn outputs_depend_only_on_earlier_pixels(
        c in 1usize..=2, h in 2usize..=9, w in 2usize..=9, layers in 1usize..=3,
        first_kernel in prop::sample::select(vec![3usize, 5, 7]),
        at in 0usize..81, seed: u64,
    ) {
        let m = model(config(c, h, w, layers, first_kernel), seed);
        let x = batch(&[2, c, h, w], seed ^ 1);
        let z = batch(&[2, 3], seed ^ 2);
        let p = at % (h * w);
        let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for n in 0..2 {
            for ch in 0..c {
                let i = (n * c + ch) * h * w + p;
                v[i] = 1.0 - v[i] + 0.5;
            }
        }
        let x2 = Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap();
        let a = m.decode_given(&z, &x, false).unwrap().flatten_from(2).unwrap();
        let b = m.decode_given(&z, &x2, false).unwrap().flatten_from(2).unwrap();
        let d = (a - b).unwrap().abs().unwrap();
        let upto = d.narrow(2, 0, p + 1).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        prop_assert_eq!(upto, 0.0, "outputs up to pixel {} moved", p);
    }
}

#[test]
fn later_outputs_do_see_earlier_pixels() {
    let m = model(config(1, 6, 6, 2, 7), 3);
    let x = batch(&[1, 1, 6, 6], 4);
    let z = batch(&[1, 3], 5);
    let x2 = x.affine(-1.0, 1.0).unwrap();
    let a = m.decode_given(&z, &x, false).unwrap();
    let b = m.decode_given(&z, &x2, false).unwrap();
    assert!(max_abs_diff(&a, &b) > 1e-4, "the context has no effect");
}

#[test]
fn several_latent_samples_share_one_context() {
    let m = model(config(1, 5, 7, 2, 5), 7);
    let x = batch(&[2, 1, 5, 7], 8);
    let z = batch(&[6, 3], 9);
    let all = m.decode_given(&z, &x, false).unwrap();
    assert_eq!(all.dims(), &[6, 1, 5, 7]);
    for j in 0..6 {
        let one = m
            .decode_given(
                &z.narrow(0, j, 1).unwrap(),
                &x.narrow(0, j % 2, 1).unwrap(),
                false,
            )
            .unwrap();
        assert!(max_abs_diff(&all.narrow(0, j, 1).unwrap(), &one) < 1e-5);
    }
    let err = m.decode_given(&batch(&[3, 3], 1), &x, false).unwrap_err();
    assert!(err.to_string().contains("multiple of 2"), "{err}");
}

#[test]
fn forward_is_teacher_forced_and_generation_is_sequential() {
    // 10 rows, reach 2 + 2: the later rows are generated from strips.
    let m = model(config(1, 10, 5, 3, 5), 11);
    assert!(m.is_autoregressive());
    let x = batch(&[3, 1, 10, 5], 12);
    let out = m.forward(&x, Mode::Eval).unwrap();
    let given = m.decode_given(out.latent.z(), &x, false).unwrap();
    assert!(max_abs_diff(&out.reconstruction, &given) < 1e-6);

    // Deterministic decoding feeds each prediction back: decoding again
    // given its own output reproduces it.
    let z = out.latent.z().clone();
    let dec = m.decode(&z, false).unwrap();
    assert_eq!(dec.dims(), x.dims());
    assert!(max_abs_diff(&m.decode_given(&z, &dec, false).unwrap(), &dec) < 1e-5);

    // Samples are binary and seeded.
    let s1 = m.generate(&z, &mut ae_core::rng(5)).unwrap();
    let s2 = m.generate(&z, &mut ae_core::rng(5)).unwrap();
    assert_eq!(max_abs_diff(&s1, &s2), 0.0);
    let v = s1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|&b| b == 0.0 || b == 1.0));
    assert_eq!(s1.i(0).unwrap().dims(), &[1, 10, 5]);
}

#[test]
fn models_without_a_context_ignore_the_input() {
    let m = model(ModelConfig::Conv(ConvAeConfig::mnist_vae()), 1);
    assert!(!m.is_autoregressive());
    let z = batch(&[2, 32], 2);
    let a = m
        .decode_given(&z, &batch(&[2, 1, 28, 28], 3), false)
        .unwrap();
    assert!(max_abs_diff(&a, &m.decode(&z, false).unwrap()) == 0.0);
    assert_eq!(m.latent_dims(), &[32]);
}

#[test]
fn invalid_context_settings_are_rejected_with_the_field() {
    let bad = |f: &dyn Fn(&mut ConvAeConfig)| {
        let ModelConfig::Conv(mut c) = config(1, 8, 8, 2, 7) else {
            unreachable!()
        };
        f(&mut c);
        ModelConfig::Conv(c).validate().unwrap_err().to_string()
    };
    let e = bad(&|c| c.pixel_context.as_mut().unwrap().first_kernel = 4);
    assert!(
        e.contains("pixel_context.first_kernel") && e.contains('4'),
        "{e}"
    );
    let e = bad(&|c| c.pixel_context.as_mut().unwrap().first_kernel = 1);
    assert!(e.contains("at least 3"), "{e}");
    let e = bad(&|c| c.pixel_context.as_mut().unwrap().layers = 0);
    assert!(e.contains("pixel_context.layers"), "{e}");
    let e = bad(&|c| {
        c.variational = false;
        c.latent = ConvLatent::Spatial { channels: 2 };
        c.entropy_bottleneck = Some(Default::default());
    });
    assert!(e.contains("pixel_context"), "{e}");
}
