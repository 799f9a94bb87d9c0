//! Property tests of noise injection.

use ae_data::{Noise, bundled_mnist_sample, rng};
use proptest::prelude::*;

fn images() -> Vec<f32> {
    bundled_mnist_sample().unwrap().take(6).data().to_vec()
}

/// The digits lifted off zero, so that a masked rectangle changes its pixels
/// wherever it lands (on the raw digits it can fall on black background).
fn lifted_images() -> Vec<f32> {
    images().iter().map(|v| 0.1 + 0.9 * v).collect()
}

const DIMS: [usize; 3] = [1, 28, 28];

fn kind() -> impl Strategy<Value = (Noise, f32)> {
    // (noise, the largest sensible strength)
    prop_oneof![
        Just((Noise::Gaussian { sigma: 0.0 }, 1.0)),
        Just((Noise::Speckle { sigma: 0.0 }, 1.0)),
        Just((Noise::SaltPepper { p: 0.0 }, 1.0)),
        Just((Noise::MaskPixels { p: 0.0 }, 1.0)),
        Just((
            Noise::MaskRects {
                count: 0,
                max_side: 9
            },
            8.0
        )),
    ]
}

fn mean_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum::<f64>()
        / a.len() as f64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shape_and_range_are_preserved((noise, max) in kind(), frac in 0.0f32..=1.0, seed: u64) {
        let clean = images();
        let mut x = clean.clone();
        noise.with_strength(frac * max).apply(&mut x, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        prop_assert_eq!(x.len(), clean.len());
        prop_assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn strength_zero_is_the_identity((noise, _) in kind(), seed: u64) {
        let clean = images();
        let mut x = clean.clone();
        noise.with_strength(0.0).apply(&mut x, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        prop_assert_eq!(x, clean);
    }

    #[test]
    fn stronger_noise_moves_the_data_further((noise, max) in kind(), frac in 0.05f32..=0.5, seed: u64) {
        let clean = lifted_images();
        let (mut weak, mut strong) = (clean.clone(), clean.clone());
        let s = (frac * max).max(if max > 1.0 { 1.0 } else { 0.0 });
        noise.with_strength(s).apply(&mut weak, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        noise.with_strength(2.0 * s).apply(&mut strong, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        let (dw, ds) = (mean_abs(&weak, &clean), mean_abs(&strong, &clean));
        prop_assert!(dw > 0.0, "noise at strength {} changed nothing", s);
        prop_assert!(ds >= dw, "{:?}: strength {} moved {} but {} moved {}", noise, 2.0 * s, ds, s, dw);
    }

    #[test]
    fn the_same_seed_gives_the_same_noise((noise, max) in kind(), seed: u64) {
        let clean = images();
        let (mut a, mut b) = (clean.clone(), clean);
        let n = noise.with_strength(0.5 * max);
        n.apply(&mut a, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        n.apply(&mut b, &DIMS, (0.0, 1.0), &mut rng(seed)).unwrap();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn invalid_strengths_are_errors() {
    let mut x = vec![0.5; 784];
    assert!(
        Noise::SaltPepper { p: 1.5 }
            .apply(&mut x, &DIMS, (0.0, 1.0), &mut rng(0))
            .is_err()
    );
    assert!(
        Noise::Gaussian { sigma: f32::NAN }
            .apply(&mut x, &DIMS, (0.0, 1.0), &mut rng(0))
            .is_err()
    );
    assert!(
        Noise::Gaussian { sigma: 0.1 }
            .apply(&mut x[..700], &DIMS, (0.0, 1.0), &mut rng(0))
            .is_err()
    );
}

#[test]
fn rectangles_mask_one_dimensional_signals_too() {
    let mut x = vec![1.0; 2 * 50];
    Noise::MaskRects {
        count: 2,
        max_side: 5,
    }
    .apply(&mut x, &[2, 50], (0.0, 1.0), &mut rng(0))
    .unwrap();
    let zeros = x.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 0 && zeros <= 2 * 2 * 5);
    // Channels are masked together.
    assert_eq!(
        x[..50].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        x[50..].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
