//! Gradients flow through every family: a few optimiser steps on one batch
//! lower the reconstruction loss.

use ae_core::{Autoencoder, Latent, Mode, ModelConfig};
use candle_nn::Optimizer;

use candle_core::{Device, Tensor};

use crate::{batch_dims, model};

/// Learnable data: sample i is a ramp over the input scaled by a random
/// intensity, so the loss can fall far below the data's variance.
fn ramps(dims: &[usize], seed: u64) -> Tensor {
    use rand::Rng;
    let mut rng = ae_core::rng(seed);
    let per: usize = dims[1..].iter().product();
    let v: Vec<f32> = (0..dims[0])
        .flat_map(|_| {
            let a: f32 = rng.random_range(0.0..1.0);
            (0..per).map(move |j| a * j as f32 / per as f32)
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

#[test]
fn a_few_adam_steps_lower_the_loss_for_every_preset() {
    for name in [
        "mnist-conv",
        "mnist-conv-vae",
        "mnist-dense",
        "mnist-dense-vae",
        "nab-conv1d",
    ] {
        let m = model(ModelConfig::preset(name).unwrap(), 0);
        let x = ramps(&batch_dims(&m, 16), 1);
        let mut opt = candle_nn::AdamW::new_lr(m.trainable_vars(), 5e-3).unwrap();
        let mut rng = ae_core::rng(0);
        let mut losses = Vec::new();
        for _ in 0..20 {
            let out = m.forward(&x, Mode::Train(&mut rng)).unwrap();
            let mut loss = (&out.reconstruction - &x)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap();
            if let Latent::Gaussian { mu, logvar, .. } = &out.latent {
                let kl = ((mu.sqr().unwrap() + logvar.exp().unwrap()).unwrap() - logvar).unwrap();
                let kl = (kl - 1.0).unwrap().mean_all().unwrap();
                loss = (loss + (kl * 1e-3).unwrap()).unwrap();
            }
            losses.push(loss.to_scalar::<f32>().unwrap());
            opt.backward_step(&loss).unwrap();
        }
        assert!(losses[19] < losses[0] * 0.5, "{name}: {losses:?}");
    }
}
