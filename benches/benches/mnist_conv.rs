//! Speed of the "mnist-conv" autoencoder: one training step (forward,
//! backward, AdamW update) at batch 128, inference at batch 128 and batch 1.
//! Criterion reports images/s as "elements/s".

use ae_benches::{images, mnist_conv};
use ae_core::{Autoencoder, Mode};
use ae_train::{Optimizer, OptimizerConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    ae_benches::tune_process();
    let model = mnist_conv();
    let mut group = c.benchmark_group("mnist-conv");
    group.sample_size(20);

    let x = images(128);
    let mut opt =
        Optimizer::new(OptimizerConfig::default(), model.named_vars()).expect("optimizer");
    let mut rng = ae_core::rng(0);
    group.throughput(Throughput::Elements(128));
    group.bench_function("train step, batch 128", |b| {
        b.iter(|| {
            let out = model.forward(&x, Mode::Train(&mut rng)).expect("forward");
            let loss = (&out.reconstruction - &x)
                .and_then(|d| d.sqr())
                .and_then(|d| d.mean_all())
                .expect("loss");
            let grads = loss.backward().expect("backward");
            opt.step(&grads, 1e-3).expect("step");
        })
    });
    group.bench_function("inference, batch 128", |b| {
        b.iter(|| model.forward(&x, Mode::Eval).expect("forward"))
    });
    let one = images(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("inference, batch 1", |b| {
        b.iter(|| model.forward(&one, Mode::Eval).expect("forward"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
