//! Speed of the "mnist-conv" autoencoder: one training step (forward,
//! backward, AdamW update) at batch 128, fused and through candle's graph,
//! inference at batch 128 and batch 1.
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
    let mut opt = Optimizer::new(OptimizerConfig::default(), model.trainable_named_vars())
        .expect("optimizer");
    let mut rng = ae_core::rng(0);
    group.throughput(Throughput::Elements(128));
    // As the trainer runs it: the fused step (`Autoencoder::mse_step`).
    group.bench_function("train step, batch 128", |b| {
        b.iter(|| {
            let step = model.mse_step(&x, &x).expect("step").expect("fused");
            opt.step(&step.grads, 1e-3).expect("update");
        })
    });
    // The same step through candle's graph: forward, MSE, backward.
    group.bench_function("train step through the graph, batch 128", |b| {
        b.iter(|| {
            let out = model.forward(&x, Mode::Train(&mut rng)).expect("forward");
            let loss = ae_core::layers::mse(&out.reconstruction, &x).expect("loss");
            let grads = loss.backward().expect("backward");
            opt.step(&grads, 1e-3).expect("step");
        })
    });
    group.bench_function("inference, batch 128", |b| {
        b.iter(|| model.infer(&x).expect("infer"))
    });
    let one = images(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("inference, batch 1", |b| {
        b.iter(|| model.infer(&one).expect("infer"))
    });
    group.finish();
}

/// Each convolution of mnist-conv alone, forward and forward + backward
/// (input, weight and bias gradients), batch 128.
fn layers(c: &mut Criterion) {
    use ae_core::layers::{Conv, ConvTranspose};
    use candle_core::{Device, Var};
    let map = candle_nn::VarMap::new();
    let vb = ae_core::seeded_var_builder(&map, 0, &Device::Cpu);
    let mut group = c.benchmark_group("mnist-conv layers");
    group.sample_size(20);
    group.throughput(Throughput::Elements(128));
    let input = |dims: &[usize]| {
        Var::from_tensor(&ae_core::randn(&mut ae_core::rng(3), dims, &Device::Cpu).expect("x"))
            .expect("var")
    };
    let convs = [
        (
            "conv 1→32 s2 (28→14)",
            Conv::new(2, 1, 32, 3, 2, 1, vb.pp("c1")).expect("conv"),
            input(&[128, 1, 28, 28]),
        ),
        (
            "conv 32→64 s2 (14→7)",
            Conv::new(2, 32, 64, 3, 2, 1, vb.pp("c2")).expect("conv"),
            input(&[128, 32, 14, 14]),
        ),
    ];
    for (name, conv, x) in &convs {
        group.bench_function(format!("{name} forward"), |b| {
            b.iter(|| conv.forward(x.as_tensor()).expect("forward"))
        });
        group.bench_function(format!("{name} forward+backward"), |b| {
            b.iter(|| {
                conv.forward(x.as_tensor())
                    .and_then(|y| y.sum_all())
                    .and_then(|l| l.backward())
                    .expect("backward")
            })
        });
    }
    let deconvs = [
        (
            "convT 64→32 s2 (7→14)",
            ConvTranspose::new(2, 64, 32, 3, 2, 1, vb.pp("d1")).expect("convT"),
            input(&[128, 64, 7, 7]),
        ),
        (
            "convT 32→1 s2 (14→28)",
            ConvTranspose::new(2, 32, 1, 3, 2, 1, vb.pp("d2")).expect("convT"),
            input(&[128, 32, 14, 14]),
        ),
    ];
    for (name, conv, x) in &deconvs {
        group.bench_function(format!("{name} forward"), |b| {
            b.iter(|| conv.forward(x.as_tensor(), 1).expect("forward"))
        });
        group.bench_function(format!("{name} forward+backward"), |b| {
            b.iter(|| {
                conv.forward(x.as_tensor(), 1)
                    .and_then(|y| y.sum_all())
                    .and_then(|l| l.backward())
                    .expect("backward")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, layers);
criterion_main!(benches);
