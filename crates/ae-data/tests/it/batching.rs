//! Datasets, splits, batches, normalisation.

use ae_data::{Dataset, NormKind, Normalizer, rng};
use candle_core::Device;

fn ramp(n: usize, d: usize) -> Dataset {
    let data = (0..n * d).map(|i| i as f32).collect();
    Dataset::new(
        "ramp",
        vec![d],
        data,
        Some((0..n as u32).map(|i| i % 3).collect()),
    )
    .unwrap()
}

#[test]
fn batches_cover_the_set_in_seeded_order() {
    let d = ramp(10, 4);
    let a = d.batch_indices(3, Some(&mut rng(1)), false).unwrap();
    let b = d.batch_indices(3, Some(&mut rng(1)), false).unwrap();
    let c = d.batch_indices(3, Some(&mut rng(2)), false).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    let mut all: Vec<usize> = a.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    let dropped = d.batch_indices(3, None, true).unwrap();
    assert_eq!(dropped.len(), 3);
    assert_eq!(dropped[0], [0, 1, 2]);
    assert!(d.batch_indices(0, None, true).is_err());
}

#[test]
fn batch_tensors_have_the_sample_shape() {
    let d = Dataset::new("imgs", vec![1, 2, 3], vec![0.5; 5 * 6], None).unwrap();
    let batches: Vec<_> = d
        .batches(2, None, false, &Device::Cpu)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].inputs.dims(), &[2, 1, 2, 3]);
    assert_eq!(batches[2].inputs.dims(), &[1, 1, 2, 3]);
    let b = &ramp(6, 2)
        .batches(4, None, false, &Device::Cpu)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(b.inputs.to_vec2::<f32>().unwrap()[1], [2.0, 3.0]);
    assert_eq!(b.labels.as_deref(), Some(&[0, 1, 2, 0][..]));
}

#[test]
fn split_is_seeded_and_disjoint() {
    let d = ramp(100, 1);
    let (t, v) = d.split(0.2, &mut rng(3)).unwrap();
    assert_eq!((t.len(), v.len()), (80, 20));
    let mut all: Vec<f32> = t.data().iter().chain(v.data()).copied().collect();
    all.sort_by(f32::total_cmp);
    assert_eq!(all, d.data());
    let (t2, _) = d.split(0.2, &mut rng(3)).unwrap();
    assert_eq!(t, t2);
    assert!(d.split(1.5, &mut rng(0)).is_err());
}

#[test]
fn normalizers_fit_apply_invert_and_serialise() {
    let d = ramp(5, 2); // values 0..10
    for (kind, per) in [
        (NormKind::MinMax, false),
        (NormKind::Standardize, false),
        (NormKind::MinMax, true),
    ] {
        let n = Normalizer::fit(kind, &d, per).unwrap();
        let mut x = d.clone();
        n.apply_to(&mut x).unwrap();
        match kind {
            NormKind::MinMax => {
                let (lo, hi) = x
                    .data()
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(
                    (lo - 0.0).abs() < 1e-6 && (hi - 1.0).abs() < 1e-6,
                    "{lo} {hi}"
                );
            }
            _ => {
                let m = x.data().iter().sum::<f32>() / 10.0;
                let v = x.data().iter().map(|a| (a - m) * (a - m)).sum::<f32>() / 10.0;
                assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "{m} {v}");
            }
        }
        let json = serde_json::to_string(&n).unwrap();
        let back: Normalizer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        let mut y = x.data().to_vec();
        back.invert(&mut y, 2).unwrap();
        for (a, b) in y.iter().zip(d.data()) {
            assert!((a - b).abs() < 1e-4);
        }
    }
    let wrong = Normalizer {
        kind: NormKind::MinMax,
        offset: vec![0.0; 3],
        scale: vec![1.0; 3],
    };
    assert!(wrong.apply(&mut [0.0; 4], 2).is_err());
}

#[test]
fn filter_needs_labels() {
    let d = Dataset::new("x", vec![1], vec![1.0, 2.0], None).unwrap();
    assert!(d.filter_classes(&[0]).is_err());
    assert!(Dataset::new("x", vec![3], vec![1.0, 2.0], None).is_err());
}
