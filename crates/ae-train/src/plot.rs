//! Pictures of a run: loss curves, reconstruction grids, VAE samples, and line
//! plots for 1-D data. Every file is written to a temporary name and renamed.

use std::path::Path;

use image::{GrayImage, RgbImage};
use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; a failure only loses the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn save_png(path: &Path, img: &image::DynamicImage) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::run_dir(path, format!("cannot encode PNG: {e}")))?;
    ae_core::checkpoint::write_atomic(path, bytes.get_ref())?;
    Ok(())
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::run_dir(path, format!("cannot draw: {e}"))
}

/// Draws named curves against epochs (log scale when they span > 10×).
pub fn loss_curves(path: &Path, title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    register_font();
    let (w, h) = (800u32, 480u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .collect();
        if pts.is_empty() {
            return Ok(());
        }
        let x_max = pts.iter().map(|p| p.0).fold(1.0, f64::max);
        let y_min = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        let colors = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
        ];
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("epoch")
                    .y_desc("loss")
                    .draw()
                    .map_err(|e| plot_err(path, e))?;
                for (i, (name, s)) in series.iter().enumerate() {
                    let c = colors[i % colors.len()];
                    chart
                        .draw_series(LineSeries::new(
                            s.iter().copied().filter(|p| p.1 > 0.0),
                            c.stroke_width(2),
                        ))
                        .map_err(|e| plot_err(path, e))?
                        .label(*name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| plot_err(path, e))?;
            }};
        }
        let builder = || {
            let mut b = ChartBuilder::on(&root);
            b.caption(title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70);
            b
        };
        if y_max / y_min > 10.0 {
            draw!(
                builder()
                    .build_cartesian_2d(0.0..x_max, (y_min * 0.9..y_max * 1.1).log_scale())
                    .map_err(|e| plot_err(path, e))?
            );
        } else {
            let pad = (y_max - y_min).max(y_max * 0.01) * 0.1;
            draw!(
                builder()
                    .build_cartesian_2d(0.0..x_max, (y_min - pad).max(0.0)..y_max + pad)
                    .map_err(|e| plot_err(path, e))?
            );
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer has the right size");
    save_png(path, &image::DynamicImage::ImageRgb8(img))
}

/// A grid of images (`rows` of equal length), each `C × H × W` with C = 1 or
/// 3 and values in [0, 1], scaled up by `zoom`, with a 2-pixel gap.
pub fn image_grid(path: &Path, rows: &[Vec<&[f32]>], dims: &[usize], zoom: u32) -> Result<()> {
    let (c, h, w) = match dims {
        [c, h, w] if *c == 1 || *c == 3 => (*c, *h as u32, *w as u32),
        _ => {
            return Err(Error::run_dir(
                path,
                format!("cannot draw samples of shape {dims:?} as images"),
            ));
        }
    };
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let gap = 2;
    let (cw, ch) = (w * zoom + gap, h * zoom + gap);
    let mut img = RgbImage::from_pixel(
        cols * cw + gap,
        rows.len() as u32 * ch + gap,
        image::Rgb([255, 255, 255]),
    );
    let plane = (h * w) as usize;
    for (r, row) in rows.iter().enumerate() {
        for (col, sample) in row.iter().enumerate() {
            for y in 0..h * zoom {
                for x in 0..w * zoom {
                    let i = ((y / zoom) * w + x / zoom) as usize;
                    let px =
                        |ch: usize| (sample[ch * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8;
                    let rgb = if c == 1 {
                        [px(0); 3]
                    } else {
                        [px(0), px(1), px(2)]
                    };
                    img.put_pixel(
                        gap + col as u32 * cw + x,
                        gap + r as u32 * ch + y,
                        image::Rgb(rgb),
                    );
                }
            }
        }
    }
    save_png(path, &image::DynamicImage::ImageRgb8(img))
}

/// Line plots of 1-D samples: one panel per pair, the input in blue and the
/// reconstruction in orange.
pub fn signal_pairs(path: &Path, pairs: &[(&[f32], &[f32])]) -> Result<()> {
    register_font();
    let n = pairs.len().max(1);
    let cols = n.min(2);
    let rows = n.div_ceil(cols);
    let (w, h) = (480 * cols as u32, 220 * rows as u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        for (area, (input, recon)) in root.split_evenly((rows, cols)).iter().zip(pairs) {
            let lo = input
                .iter()
                .chain(recon.iter())
                .copied()
                .fold(f32::INFINITY, f32::min);
            let hi = input
                .iter()
                .chain(recon.iter())
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let pad = ((hi - lo) * 0.05).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .x_label_area_size(20)
                .y_label_area_size(45)
                .build_cartesian_2d(0..input.len(), lo - pad..hi + pad)
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for (s, c) in [
                (input, RGBColor(31, 119, 180)),
                (recon, RGBColor(255, 127, 14)),
            ] {
                chart
                    .draw_series(LineSeries::new(
                        s.iter().enumerate().map(|(i, &v)| (i, v)),
                        c.stroke_width(2),
                    ))
                    .map_err(|e| plot_err(path, e))?;
            }
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer has the right size");
    save_png(path, &image::DynamicImage::ImageRgb8(img))
}

/// Writes one `C × H × W` sample (values in [0, 1]) as a PNG.
pub fn save_image(path: &Path, sample: &[f32], dims: &[usize]) -> Result<()> {
    match dims {
        [1, h, w] => {
            let px = sample
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let img = GrayImage::from_raw(*w as u32, *h as u32, px)
                .ok_or_else(|| Error::run_dir(path, "bad image size"))?;
            save_png(path, &image::DynamicImage::ImageLuma8(img))
        }
        _ => image_grid(path, &[vec![sample]], dims, 1),
    }
}

/// A scatter plot of 2-D points coloured by label (up to ten colours, grey
/// for unlabelled points), with a legend.
pub fn scatter(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    labels: Option<&[u32]>,
) -> Result<()> {
    register_font();
    let (w, h) = (800u32, 720u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| {
            points.iter().map(sel).fold(init, f)
        };
        let (x0, x1) = (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
        );
        let (y0, y1) = (
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        );
        let (px, py) = (((x1 - x0) * 0.05).max(1e-6), ((y1 - y0) * 0.05).max(1e-6));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)
            .map_err(|e| plot_err(path, e))?;
        chart
            .configure_mesh()
            .draw()
            .map_err(|e| plot_err(path, e))?;
        let palette = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
            RGBColor(188, 189, 34),
            RGBColor(23, 190, 207),
        ];
        let mut classes: Vec<u32> = labels.map(|l| l.to_vec()).unwrap_or_default();
        classes.sort_unstable();
        classes.dedup();
        if classes.is_empty() {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 2, RGBColor(100, 100, 100).mix(0.6).filled())),
                )
                .map_err(|e| plot_err(path, e))?;
        }
        for (ci, &c) in classes.iter().enumerate() {
            let color = palette[ci % palette.len()];
            let l = labels.unwrap_or(&[]);
            chart
                .draw_series(
                    points
                        .iter()
                        .zip(l)
                        .filter(|(_, lab)| **lab == c)
                        .map(|(&p, _)| Circle::new(p, 2, color.mix(0.6).filled())),
                )
                .map_err(|e| plot_err(path, e))?
                .label(c.to_string())
                .legend(move |(x, y)| Circle::new((x + 5, y), 4, color.filled()));
        }
        if !classes.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer has the right size");
    save_png(path, &image::DynamicImage::ImageRgb8(img))
}
