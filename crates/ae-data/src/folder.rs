//! Image folders: PNG and JPEG files, grayscale or RGB, optionally labelled by
//! `normal/` and `abnormal/` subfolders.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// How to read the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// One channel (luma).
    #[default]
    Gray,
    /// Three channels.
    Rgb,
}

impl ColorMode {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Gray => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// Label of images under `normal/`.
pub const NORMAL: u32 = 0;
/// Label of images under `abnormal/`.
pub const ABNORMAL: u32 = 1;

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one image as `C × H × W` values in [0, 1], resized to `size`
/// (width, height) when given.
pub fn read_image(
    path: &Path,
    color: ColorMode,
    size: Option<(u32, u32)>,
) -> Result<(Vec<f32>, (u32, u32))> {
    let img =
        image::open(path).map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?;
    let img = match size {
        Some((w, h)) if (img.width(), img.height()) != (w, h) => {
            img.resize_exact(w, h, FilterType::Triangle)
        }
        _ => img,
    };
    let (w, h) = (img.width(), img.height());
    let data = match color {
        ColorMode::Gray => img
            .to_luma8()
            .into_raw()
            .into_iter()
            .map(|b| f32::from(b) / 255.0)
            .collect(),
        ColorMode::Rgb => {
            let rgb = img.to_rgb8();
            let plane = (w * h) as usize;
            let mut out = vec![0.0; 3 * plane];
            for (i, px) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = f32::from(px[c]) / 255.0;
                }
            }
            out
        }
    };
    Ok((data, (w, h)))
}

/// Loads every PNG/JPEG in `dir` (sorted by name). When `dir` has `normal/`
/// or `abnormal/` subfolders, their images are loaded instead, labelled
/// [`NORMAL`] and [`ABNORMAL`]. All images must share one size unless
/// `resize` (width, height) is given; otherwise the first image whose size
/// differs is an error naming it and both sizes. Sample keys are file paths.
pub fn load_image_folder(
    dir: &Path,
    color: ColorMode,
    resize: Option<(u32, u32)>,
) -> Result<Dataset> {
    let mut files: Vec<(PathBuf, Option<u32>)> = Vec::new();
    let (normal, abnormal) = (dir.join("normal"), dir.join("abnormal"));
    if normal.is_dir() || abnormal.is_dir() {
        for (sub, label) in [(normal, NORMAL), (abnormal, ABNORMAL)] {
            if sub.is_dir() {
                files.extend(list_images(&sub)?.into_iter().map(|p| (p, Some(label))));
            }
        }
    } else {
        files.extend(list_images(dir)?.into_iter().map(|p| (p, None)));
    }
    if files.is_empty() {
        return Err(Error::format(dir, "no PNG or JPEG images found"));
    }
    let mut data = Vec::new();
    let mut first: Option<((u32, u32), PathBuf)> = None;
    for (path, _) in &files {
        let (pixels, size) = read_image(path, color, resize)?;
        match &first {
            None => first = Some((size, path.clone())),
            Some((want, first_path)) if *want != size => {
                return Err(Error::format(
                    path,
                    format!(
                        "image is {}x{}, but {} is {}x{}: all images must share one size (or set a resize)",
                        size.0,
                        size.1,
                        first_path.display(),
                        want.0,
                        want.1
                    ),
                ));
            }
            Some(_) => {}
        }
        data.extend(pixels);
    }
    let ((w, h), _) = first.expect("at least one image");
    let labels = if files.iter().all(|(_, l)| l.is_some()) {
        Some(files.iter().map(|(_, l)| l.unwrap_or(NORMAL)).collect())
    } else {
        None
    };
    let keys = files.iter().map(|(p, _)| p.display().to_string()).collect();
    Dataset::new(
        format!("images in {}", dir.display()),
        vec![color.channels(), h as usize, w as usize],
        data,
        labels,
    )?
    .with_keys(keys)
}

/// Loads the given image files (for commands that take `IMAGE...`); all must
/// share one size unless `resize` is given.
pub fn load_image_files(
    files: &[PathBuf],
    color: ColorMode,
    resize: Option<(u32, u32)>,
) -> Result<Dataset> {
    let mut data = Vec::new();
    let mut first: Option<(u32, u32)> = None;
    for path in files {
        let (pixels, size) = read_image(path, color, resize)?;
        if let Some(want) = first
            && want != size
        {
            return Err(Error::format(
                path,
                format!(
                    "image is {}x{}, but {} is {}x{}",
                    size.0,
                    size.1,
                    files[0].display(),
                    want.0,
                    want.1
                ),
            ));
        }
        first = Some(size);
        data.extend(pixels);
    }
    let (w, h) = first.ok_or_else(|| Error::config("images", "no image files given"))?;
    Dataset::new(
        "images",
        vec![color.channels(), h as usize, w as usize],
        data,
        None,
    )?
    .with_keys(files.iter().map(|p| p.display().to_string()).collect())
}
