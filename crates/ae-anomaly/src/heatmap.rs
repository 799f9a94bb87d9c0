//! Heat maps: the input, its reconstruction, and the per-pixel error over the
//! input in red, side by side, as a PNG.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

fn gray(v: &[f32], c: usize, plane: usize, i: usize) -> f32 {
    (0..c).map(|ch| v[ch * plane + i]).sum::<f32>() / c as f32
}

/// Writes one heat map. `input`, `reconstruction` and `error` are `C × H × W`
/// (values in [0, 1] for the first two); `scale` maps error to full red
/// (use one scale for a set of maps so they compare).
pub fn write_heatmap(
    path: &Path,
    input: &[f32],
    reconstruction: &[f32],
    error: &[f32],
    dims: &[usize],
    scale: f32,
    zoom: u32,
) -> Result<()> {
    let [c, h, w] = dims else {
        return Err(Error::config(
            "heatmaps",
            format!("need images (C x H x W), found samples of {dims:?}"),
        ));
    };
    let (c, h, w) = (*c, *h as u32, *w as u32);
    let plane = (h * w) as usize;
    let gap = 2 * zoom;
    let mut img = RgbImage::from_pixel(3 * w * zoom + 2 * gap, h * zoom, Rgb([255, 255, 255]));
    let to8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for y in 0..h * zoom {
        for x in 0..w * zoom {
            let i = ((y / zoom) * w + x / zoom) as usize;
            let px = |v: &[f32]| -> [u8; 3] {
                if c == 3 {
                    [to8(v[i]), to8(v[plane + i]), to8(v[2 * plane + i])]
                } else {
                    [to8(gray(v, c, plane, i)); 3]
                }
            };
            img.put_pixel(x, y, Rgb(px(input)));
            img.put_pixel(w * zoom + gap + x, y, Rgb(px(reconstruction)));
            let g = gray(input, c, plane, i) * 0.6;
            let e = (gray(error, c, plane, i) / scale.max(1e-12)).clamp(0.0, 1.0);
            let over = [
                to8(g + e * (1.0 - g)),
                to8(g * (1.0 - e)),
                to8(g * (1.0 - e)),
            ];
            img.put_pixel(2 * (w * zoom + gap) + x, y, Rgb(over));
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::file(path, format!("cannot encode PNG: {e}")))?;
    ae_core::checkpoint::write_atomic(path, bytes.get_ref())?;
    Ok(())
}
