//! IDX files, MNIST and the bundled sample.

use ae_data::idx::{Idx, read_idx, write_idx};
use ae_data::{Mnist, Split, bundled_mnist_sample};

use crate::shared_data;

#[test]
fn bundled_sample_is_balanced_real_digits() {
    let s = bundled_mnist_sample().unwrap();
    assert_eq!(s.len(), 2000);
    assert_eq!(s.sample_dims(), &[1, 28, 28]);
    let labels = s.labels().unwrap();
    for c in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == c).count(), 200, "class {c}");
    }
    let mean = s.data().iter().sum::<f32>() / s.data().len() as f32;
    assert!(
        (0.1..0.17).contains(&mean),
        "MNIST's mean intensity is ~0.13, found {mean}"
    );
}

#[test]
fn bundled_sample_matches_its_stated_provenance() {
    let Some(dir) = shared_data("mnist") else {
        return;
    };
    let test = Mnist::load(&dir, Split::Test).unwrap();
    let indices: Vec<usize> = include_str!("../../assets/sample-indices.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.parse().unwrap())
        .collect();
    let sample = bundled_mnist_sample().unwrap();
    assert_eq!(sample, {
        let mut s = test.subset(&indices);
        // Names differ; compare content.
        s = ae_data::Dataset::new(
            sample.name(),
            s.sample_dims().to_vec(),
            s.data().to_vec(),
            s.labels().map(<[u32]>::to_vec),
        )
        .unwrap();
        s
    });
}

#[test]
fn full_mnist_loads_with_labels_and_filters_by_class() {
    let Some(dir) = shared_data("mnist") else {
        return;
    };
    let train = Mnist::load(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    let test = Mnist::load(&dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    let ones = test.filter_classes(&[1]).unwrap();
    assert_eq!(ones.len(), 1135); // MNIST's test set has 1,135 ones.
    assert!(ones.labels().unwrap().iter().all(|&l| l == 1));
}

#[test]
fn bad_idx_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("t10k-images-idx3-ubyte");
    let lab = dir.path().join("t10k-labels-idx1-ubyte.gz");
    // Wrong image size: 27x27.
    write_idx(
        &img,
        &Idx {
            dims: vec![10_000, 27, 27],
            data: vec![0; 10_000 * 27 * 27],
        },
        false,
    )
    .unwrap();
    write_idx(
        &lab,
        &Idx {
            dims: vec![10_000],
            data: vec![0; 10_000],
        },
        true,
    )
    .unwrap();
    let e = Mnist::load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("28") && e.contains("27"),
        "{e}"
    );
    // Truncated.
    write_idx(
        &img,
        &Idx {
            dims: vec![10_000, 28, 28],
            data: vec![0; 10_000 * 784],
        },
        false,
    )
    .unwrap();
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() - 10]).unwrap();
    let e = Mnist::load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    // Wrong magic.
    let mut bad = bytes.clone();
    bad[0] = 0x42;
    std::fs::write(&img, &bad).unwrap();
    let e = read_idx(&img).unwrap_err().to_string();
    assert!(e.contains("magic"), "{e}");
    // Corrupt gzip.
    std::fs::write(&lab, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let e = read_idx(&lab).unwrap_err().to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
    // Missing.
    let e = Mnist::load(&dir.path().join("nowhere"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn idx_round_trips_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let idx = Idx {
        dims: vec![3, 2, 2],
        data: (0..12).collect(),
    };
    for gz in [false, true] {
        let p = dir.path().join(format!("a{gz}"));
        write_idx(&p, &idx, gz).unwrap();
        assert_eq!(read_idx(&p).unwrap(), idx);
    }
}

#[test]
fn label_counts_and_header_counts_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("t10k-images-idx3-ubyte.gz");
    let lab = dir.path().join("t10k-labels-idx1-ubyte.gz");
    write_idx(
        &img,
        &Idx {
            dims: vec![10_000, 28, 28],
            data: vec![0; 10_000 * 784],
        },
        true,
    )
    .unwrap();
    write_idx(
        &lab,
        &Idx {
            dims: vec![9_999],
            data: vec![0; 9_999],
        },
        true,
    )
    .unwrap();
    let e = Mnist::load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz") && e.contains("10000 labels") && e.contains("9999"),
        "{e}"
    );
    // A header that promises more images than the file holds.
    let mut bytes = ae_data::idx::encode_idx(&Idx {
        dims: vec![3, 28, 28],
        data: vec![0; 3 * 784],
    });
    bytes[7] = 4; // n = 4
    let raw = dir.path().join("x-idx3-ubyte");
    std::fs::write(&raw, &bytes).unwrap();
    let e = read_idx(&raw).unwrap_err().to_string();
    assert!(
        e.contains("x-idx3-ubyte") && e.contains("truncated") && e.contains("[4, 28, 28]"),
        "{e}"
    );
    // Labels out of range.
    write_idx(
        &lab,
        &Idx {
            dims: vec![10_000],
            data: vec![10; 10_000],
        },
        true,
    )
    .unwrap();
    let e = Mnist::load(dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 to 9") && e.contains("10"), "{e}");
}
