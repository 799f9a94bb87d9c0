//! Image folders, CSV vectors and time-series windows.

use ae_data::{ABNORMAL, ColorMode, NORMAL, load_csv_vectors, load_image_folder, load_series_csv};

fn png(path: &std::path::Path, w: u32, h: u32, v: u8) {
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_with_labels_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("normal")).unwrap();
    std::fs::create_dir_all(dir.path().join("abnormal")).unwrap();
    png(&dir.path().join("normal/a.png"), 8, 6, 255);
    png(&dir.path().join("normal/b.png"), 8, 6, 0);
    png(&dir.path().join("abnormal/c.png"), 8, 6, 51);
    let d = load_image_folder(dir.path(), ColorMode::Gray, None).unwrap();
    assert_eq!(d.sample_dims(), &[1, 6, 8]);
    assert_eq!(d.labels().unwrap(), &[NORMAL, NORMAL, ABNORMAL]);
    assert!((d.sample(2)[0] - 0.2).abs() < 1e-6);
    let rgb = load_image_folder(dir.path(), ColorMode::Rgb, Some((4, 4))).unwrap();
    assert_eq!(rgb.sample_dims(), &[3, 4, 4]);

    png(&dir.path().join("abnormal/d.png"), 9, 6, 0);
    let e = load_image_folder(dir.path(), ColorMode::Gray, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d.png") && e.contains("9x6") && e.contains("8x6"),
        "{e}"
    );
    assert!(load_image_folder(dir.path(), ColorMode::Gray, Some((8, 6))).is_ok());

    std::fs::write(dir.path().join("normal/broken.png"), b"not a png").unwrap();
    let e = load_image_folder(dir.path(), ColorMode::Gray, Some((8, 6)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.png"), "{e}");
}

#[test]
fn csv_vectors_with_a_label_column_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.csv");
    std::fs::write(&p, "a,label,b\n1,0,2\n3,1,4.5\n").unwrap();
    let d = load_csv_vectors(&p, Some("label")).unwrap();
    assert_eq!(d.sample_dims(), &[2]);
    assert_eq!(d.data(), &[1.0, 2.0, 3.0, 4.5]);
    assert_eq!(d.labels().unwrap(), &[0, 1]);
    assert!(
        load_csv_vectors(&p, Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
    std::fs::write(&p, "a,b\n1,2\n3,x\n").unwrap();
    let e = load_csv_vectors(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("v.csv") && e.contains("line 3") && e.contains("`x`"),
        "{e}"
    );
    std::fs::write(&p, "a,b\n1,NaN\n").unwrap();
    assert!(
        load_csv_vectors(&p, None)
            .unwrap_err()
            .to_string()
            .contains("not finite")
    );
}

#[test]
fn series_windows_keep_their_start_times_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..20 {
        text.push_str(&format!("2020-01-01 00:{i:02}:00,{i}\n"));
    }
    std::fs::write(&p, text).unwrap();
    let s = load_series_csv(&p).unwrap();
    let spans = [(
        "2020-01-01 00:12:00".to_string(),
        "2020-01-01 00:13:00".to_string(),
    )];
    let w = s.windows(5, 3, Some(&spans)).unwrap();
    assert_eq!(w.len(), 6); // starts 0, 3, 6, 9, 12, 15
    assert_eq!(w.sample_dims(), &[1, 5]);
    assert_eq!(w.sample(1), &[3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(w.keys().unwrap()[2], "2020-01-01 00:06:00");
    assert_eq!(w.labels().unwrap(), &[0, 0, 0, 1, 1, 0]);
    assert!(s.windows(21, 1, None).is_err());
}

#[test]
fn an_empty_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let e = load_image_folder(dir.path(), ColorMode::Gray, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("no PNG or JPEG"),
        "{e}"
    );
    let e = load_image_folder(&dir.path().join("absent"), ColorMode::Gray, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent"), "{e}");
}
