//! # ae-codec: learned image compression with real bitstreams
//!
//! A [`Codec`] wraps a trained `ae-core` model that has an entropy bottleneck
//! (a [`ConvAeConfig`](ae_core::ConvAeConfig) with a spatial latent and
//! `entropy_bottleneck` set, trained for `distortion + λ·rate` by `ae-train`).
//! Compressing an image runs the encoder, rounds the latent to integers and
//! codes them with range-ANS (the `constriction` crate) under the model's
//! learned per-channel densities, quantised to 24-bit fixed-point tables.
//! Decompressing decodes the integers and runs the decoder.
//!
//! Files ([`format`]) carry magic bytes, a version, a 4-byte digest of the
//! model's weights (decoding with another model is refused), the image and
//! latent sizes as varints, the payload and a CRC-32 of the whole file. Images
//! of any size are padded (edges replicated) to a multiple of the model's
//! stride and cropped back. An archive ([`Codec::compress_archive`]) holds
//! many images behind one header and one rANS stream.
//!
//! Decoding never panics on bad bytes: truncated, corrupted, foreign or
//! oversized inputs are [`Error`]s, and what a header may ask to allocate is
//! bounded ([`format::MAX_PIXELS`]).
//!
//! `ae-codec` depends on `ae-core` only.

pub mod format;

mod error;

use ae_core::{Model, Network, PriorParams};
use candle_core::Tensor;
use constriction::stream::Decode;
use constriction::stream::model::DefaultContiguousCategoricalEntropyModel;
use constriction::stream::stack::DefaultAnsCoder;

pub use error::{Error, Result};
use format::{DIGEST_LEN, Reader, put_varint};

/// Probability mass left outside each channel's coded range, per side.
const TAIL_MASS: f64 = 1e-9;
/// Most symbols a channel's table may span.
const MAX_SUPPORT: i64 = 1 << 12;
/// Images per forward pass.
const BATCH: usize = 256;

/// An image: `channels × height × width` values in `[0, 1]`, channel-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Channels (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels · height · width` values.
    pub data: Vec<f32>,
}

impl Image {
    /// Checks the sizes and that every value is finite.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::Image(format!(
                "empty image {channels}x{height}x{width}"
            )));
        }
        if data.len() != channels * height * width {
            return Err(Error::Image(format!(
                "{channels}x{height}x{width} needs {} values, found {}",
                channels * height * width,
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Image(format!("value {i} is {}", data[i])));
        }
        Ok(Image {
            channels,
            height,
            width,
            data,
        })
    }

    fn pixels(&self) -> u64 {
        (self.height * self.width) as u64
    }
}

/// A quantised latent: `channels × height × width` integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbols {
    /// Latent channels.
    pub channels: usize,
    /// Latent rows.
    pub height: usize,
    /// Latent columns.
    pub width: usize,
    /// The integers, channel-major.
    pub values: Vec<i32>,
}

/// What [`Codec::decompress`] returns.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The reconstructed image, at the original size.
    pub image: Image,
    /// The latent integers read from the file.
    pub symbols: Symbols,
}

/// PSNR in dB between two images of the same size, values in `[0, 1]`.
pub fn psnr(a: &Image, b: &Image) -> f64 {
    let n = a.data.len().max(1) as f64;
    let mse: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / n;
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// The first bytes of SHA-256 over every tensor of the model (names, shapes
/// and values in name order): what files record to refuse another model.
pub fn model_digest(model: &Model) -> Result<[u8; DIGEST_LEN]> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, var) in model.named_vars() {
        h.update(name.as_bytes());
        for d in var.dims() {
            h.update((*d as u64).to_le_bytes());
        }
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        for v in values {
            h.update(v.to_le_bytes());
        }
    }
    let full = h.finalize();
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&full[..DIGEST_LEN]);
    Ok(d)
}

/// Per-channel coding tables built from the learned densities.
struct Tables {
    lo: Vec<i64>,
    hi: Vec<i64>,
    models: Vec<DefaultContiguousCategoricalEntropyModel>,
}

impl Tables {
    fn new(p: &PriorParams) -> Result<Self> {
        let (mut lo, mut hi, mut models) = (Vec::new(), Vec::new(), Vec::new());
        for c in 0..p.channels() {
            let (l, h) = p.support(c, TAIL_MASS, MAX_SUPPORT);
            let probs: Vec<f64> = (l..=h).map(|v| p.pmf(c, v).max(0.0)).collect();
            let m =
                DefaultContiguousCategoricalEntropyModel::from_floating_point_probabilities_fast(
                    &probs, None,
                )
                .map_err(|()| {
                    Error::NotACodec(format!(
                        "latent channel {c}: its learned density cannot be tabulated"
                    ))
                })?;
            lo.push(l);
            hi.push(h);
            models.push(m);
        }
        Ok(Tables { lo, hi, models })
    }

    /// The symbol index of `v` in channel `c` (values are clamped when made).
    fn index(&self, c: usize, v: i32) -> usize {
        (i64::from(v) - self.lo[c]) as usize
    }

    fn encode(&self, coder: &mut DefaultAnsCoder, all: &[&Symbols]) -> Result<()> {
        let items: Vec<(usize, usize)> = all
            .iter()
            .flat_map(|s| {
                let per = s.height * s.width;
                s.values.iter().enumerate().map(move |(i, &v)| (i / per, v))
            })
            .map(|(c, v)| (self.index(c, v), c))
            .collect();
        coder
            .encode_symbols_reverse(items.iter().map(|&(sym, c)| (sym, &self.models[c])))
            .map_err(|e| Error::Corrupt(format!("entropy coder: {e:?}")))?;
        Ok(())
    }

    fn decode(
        &self,
        coder: &mut DefaultAnsCoder,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Symbols> {
        let per = height * width;
        let mut values = Vec::with_capacity(channels * per);
        for c in 0..channels {
            for _ in 0..per {
                let s = coder
                    .decode_symbol(&self.models[c])
                    .map_err(|e| Error::Corrupt(format!("entropy decoder: {e:?}")))?;
                values.push((self.lo[c] + s as i64) as i32);
            }
        }
        Ok(Symbols {
            channels,
            height,
            width,
            values,
        })
    }
}

/// A trained codec: the model, its coding tables and its digest.
pub struct Codec {
    model: Model,
    tables: Tables,
    digest: [u8; DIGEST_LEN],
    stride: usize,
    in_channels: usize,
    latent_channels: usize,
}

impl Codec {
    /// Wraps a model with an entropy bottleneck; any other model is
    /// [`Error::NotACodec`].
    pub fn new(model: Model) -> Result<Self> {
        let Network::Conv(net) = model.network() else {
            return Err(Error::NotACodec(format!(
                "a `{}` model has no entropy bottleneck (train a conv model with entropy_bottleneck set)",
                model.config().kind()
            )));
        };
        let Some(prior) = net.prior_params()? else {
            return Err(Error::NotACodec(
                "the model has no entropy bottleneck (set entropy_bottleneck in its config and train it with a rate weight)".into(),
            ));
        };
        let tables = Tables::new(&prior)?;
        let stride = net.stride();
        let in_channels = net.config().in_channels;
        let latent_channels = prior.channels();
        let digest = model_digest(&model)?;
        Ok(Codec {
            model,
            tables,
            digest,
            stride,
            in_channels,
            latent_channels,
        })
    }

    /// Loads a run directory (or any checkpoint directory) as a codec.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        Codec::new(Model::load(dir, &candle_core::Device::Cpu)?)
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The digest written into files.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        self.digest
    }

    /// How much the latent is smaller than the image on each side.
    pub fn stride(&self) -> usize {
        self.stride
    }

    fn net(&self) -> &ae_core::ConvAutoencoder {
        match self.model.network() {
            Network::Conv(n) => n,
            _ => unreachable!("checked in Codec::new"),
        }
    }

    fn padded(&self, n: usize) -> usize {
        n.div_ceil(self.stride) * self.stride
    }

    fn latent_size(&self, height: usize, width: usize) -> (usize, usize) {
        (
            self.padded(height) / self.stride,
            self.padded(width) / self.stride,
        )
    }

    fn check_image(&self, im: &Image) -> Result<()> {
        if im.channels != self.in_channels {
            return Err(Error::Image(format!(
                "the codec takes {}-channel images, found {} channels",
                self.in_channels, im.channels
            )));
        }
        if im.pixels() > format::MAX_PIXELS {
            return Err(Error::Image(format!(
                "{}x{} is larger than the {} pixels a file may hold",
                im.height,
                im.width,
                format::MAX_PIXELS
            )));
        }
        if im.data.len() != im.channels * im.height * im.width {
            return Err(Error::Image("data length does not match the sizes".into()));
        }
        Ok(())
    }

    /// The integers the codec stores for images of one size.
    pub fn quantize(&self, images: &[&Image]) -> Result<Vec<Symbols>> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let (c, h, w) = (first.channels, first.height, first.width);
        for im in images {
            self.check_image(im)?;
            if (im.channels, im.height, im.width) != (c, h, w) {
                return Err(Error::Image("quantize takes images of one size".into()));
            }
        }
        let (ph, pw) = (self.padded(h), self.padded(w));
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let mut x = Vec::with_capacity(chunk.len() * c * ph * pw);
            for im in chunk {
                for ch in 0..c {
                    let plane = &im.data[ch * h * w..(ch + 1) * h * w];
                    for r in 0..ph {
                        let row = &plane[r.min(h - 1) * w..][..w];
                        x.extend_from_slice(row);
                        x.extend(std::iter::repeat_n(row[w - 1], pw - w));
                    }
                }
            }
            let x = Tensor::from_vec(x, (chunk.len(), c, ph, pw), &candle_core::Device::Cpu)?;
            let y = self.net().analysis(&x)?;
            let (_, lc, lh, lw) = y.dims4()?;
            let y = y.flatten_all()?.to_vec1::<f32>()?;
            for s in y.chunks(lc * lh * lw) {
                let values = s
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let ch = i / (lh * lw);
                        let r = f64::from(v.round());
                        let r = if r.is_finite() { r } else { 0.0 };
                        r.clamp(self.tables.lo[ch] as f64, self.tables.hi[ch] as f64) as i32
                    })
                    .collect();
                out.push(Symbols {
                    channels: lc,
                    height: lh,
                    width: lw,
                    values,
                });
            }
        }
        Ok(out)
    }

    /// Decodes latents of one size back to images of `height × width`.
    pub fn reconstruct(
        &self,
        symbols: &[&Symbols],
        height: usize,
        width: usize,
    ) -> Result<Vec<Image>> {
        let (ph, pw) = (self.padded(height), self.padded(width));
        let (lh, lw) = self.latent_size(height, width);
        let c = self.in_channels;
        let mut out = Vec::with_capacity(symbols.len());
        for chunk in symbols.chunks(BATCH) {
            let mut z = Vec::with_capacity(chunk.len() * self.latent_channels * lh * lw);
            for s in chunk {
                if (s.channels, s.height, s.width) != (self.latent_channels, lh, lw) {
                    return Err(Error::Corrupt(format!(
                        "latent {}x{}x{} does not fit a {height}x{width} image (expected {}x{lh}x{lw})",
                        s.channels, s.height, s.width, self.latent_channels
                    )));
                }
                z.extend(s.values.iter().map(|&v| v as f32));
            }
            let z = Tensor::from_vec(
                z,
                (chunk.len(), self.latent_channels, lh, lw),
                &candle_core::Device::Cpu,
            )?;
            let x = self.net().synthesis(&z, &[ph, pw])?;
            let x = x.flatten_all()?.to_vec1::<f32>()?;
            for full in x.chunks(c * ph * pw) {
                let mut data = Vec::with_capacity(c * height * width);
                for ch in 0..c {
                    for r in 0..height {
                        let row = &full[(ch * ph + r) * pw..][..width];
                        data.extend(row.iter().map(|v| v.clamp(0.0, 1.0)));
                    }
                }
                out.push(Image {
                    channels: c,
                    height,
                    width,
                    data,
                });
            }
        }
        Ok(out)
    }

    /// Compresses one image into a `.aec` file's bytes.
    pub fn compress(&self, image: &Image) -> Result<Vec<u8>> {
        let symbols = self.quantize(&[image])?.remove(0);
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format::MAGIC_IMAGE);
        out.push(format::VERSION);
        out.extend_from_slice(&self.digest);
        for v in [
            image.channels,
            image.height,
            image.width,
            symbols.channels,
            symbols.height,
            symbols.width,
        ] {
            put_varint(&mut out, v as u64);
        }
        let mut coder = DefaultAnsCoder::new();
        self.tables.encode(&mut coder, &[&symbols])?;
        let words = coder
            .into_compressed()
            .map_err(|e| Error::Corrupt(format!("entropy coder: {e:?}")))?;
        out.extend(format::words_to_bytes(&words));
        format::push_crc(&mut out);
        Ok(out)
    }

    /// Reads a `.aec` file's bytes: the image and the latent it stored.
    pub fn decompress(&self, bytes: &[u8]) -> Result<Decoded> {
        format::check_magic(bytes, format::MAGIC_IMAGE)?;
        let body = format::check_crc(bytes)?;
        let mut r = Reader::new(body);
        format::read_preamble(&mut r, &self.digest)?;
        let c = r.bounded("channels", 1, format::MAX_CHANNELS)? as usize;
        let h = r.bounded("height", 1, format::MAX_PIXELS)? as usize;
        let w = r.bounded("width", 1, format::MAX_PIXELS)? as usize;
        if c != self.in_channels {
            return Err(Error::Corrupt(format!(
                "the file holds a {c}-channel image, the model takes {}",
                self.in_channels
            )));
        }
        if (h as u64) * (w as u64) > format::MAX_PIXELS {
            return Err(Error::Corrupt(format!(
                "{h}x{w} is larger than {} pixels",
                format::MAX_PIXELS
            )));
        }
        let (lh, lw) = self.latent_size(h, w);
        let found = [
            r.varint("latent channels")?,
            r.varint("latent height")?,
            r.varint("latent width")?,
        ];
        let want = [self.latent_channels as u64, lh as u64, lw as u64];
        if found != want {
            return Err(Error::Corrupt(format!(
                "latent shape {found:?} does not match {want:?} (this model, a {h}x{w} image)"
            )));
        }
        let words = format::bytes_to_words(r.rest())?;
        let mut coder = DefaultAnsCoder::from_compressed(words)
            .map_err(|_| Error::Corrupt("the payload is not an rANS stream".into()))?;
        let symbols = self
            .tables
            .decode(&mut coder, self.latent_channels, lh, lw)?;
        if !coder.is_empty() {
            return Err(Error::Corrupt(
                "the payload holds more data than the image needs".into(),
            ));
        }
        let image = self.reconstruct(&[&symbols], h, w)?.remove(0);
        Ok(Decoded { image, symbols })
    }

    /// Compresses many images (any sizes) into one archive's bytes: one
    /// header, one rANS stream.
    pub fn compress_archive(&self, images: &[Image]) -> Result<Vec<u8>> {
        if images.len() as u64 > format::MAX_IMAGES {
            return Err(Error::Image(format!(
                "an archive holds at most {} images, found {}",
                format::MAX_IMAGES,
                images.len()
            )));
        }
        let total: u64 = images.iter().map(Image::pixels).sum();
        if total > format::MAX_ARCHIVE_PIXELS {
            return Err(Error::Image(format!(
                "an archive holds at most {} pixels, found {total}",
                format::MAX_ARCHIVE_PIXELS
            )));
        }
        // Runs of images of one size.
        let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
        for im in images {
            match runs.last_mut() {
                Some((n, c, h, w)) if (*c, *h, *w) == (im.channels, im.height, im.width) => *n += 1,
                _ => runs.push((1, im.channels, im.height, im.width)),
            }
        }
        let mut symbols = Vec::with_capacity(images.len());
        let mut at = 0;
        for &(n, ..) in &runs {
            let run: Vec<&Image> = images[at..at + n].iter().collect();
            symbols.extend(self.quantize(&run)?);
            at += n;
        }
        let mut out = Vec::new();
        out.extend_from_slice(format::MAGIC_ARCHIVE);
        out.push(format::VERSION);
        out.extend_from_slice(&self.digest);
        put_varint(&mut out, images.len() as u64);
        put_varint(&mut out, runs.len() as u64);
        for &(n, c, h, w) in &runs {
            for v in [n, c, h, w] {
                put_varint(&mut out, v as u64);
            }
        }
        put_varint(&mut out, self.latent_channels as u64);
        let mut coder = DefaultAnsCoder::new();
        let refs: Vec<&Symbols> = symbols.iter().collect();
        self.tables.encode(&mut coder, &refs)?;
        let words = coder
            .into_compressed()
            .map_err(|e| Error::Corrupt(format!("entropy coder: {e:?}")))?;
        if !images.is_empty() {
            out.extend(format::words_to_bytes(&words));
        }
        format::push_crc(&mut out);
        Ok(out)
    }

    /// Reads an archive's bytes: every image with its latent, in order.
    pub fn decompress_archive(&self, bytes: &[u8]) -> Result<Vec<Decoded>> {
        format::check_magic(bytes, format::MAGIC_ARCHIVE)?;
        let body = format::check_crc(bytes)?;
        let mut r = Reader::new(body);
        format::read_preamble(&mut r, &self.digest)?;
        let count = r.bounded("image count", 0, format::MAX_IMAGES)?;
        let nruns = r.bounded("size runs", u64::from(count > 0), count)?;
        let mut runs = Vec::new();
        let (mut seen, mut pixels) = (0u64, 0u64);
        for _ in 0..nruns {
            let n = r.bounded("run length", 1, count - seen)?;
            let c = r.bounded("channels", 1, format::MAX_CHANNELS)?;
            let h = r.bounded("height", 1, format::MAX_PIXELS)?;
            let w = r.bounded("width", 1, format::MAX_PIXELS)?;
            if c as usize != self.in_channels {
                return Err(Error::Corrupt(format!(
                    "the archive holds {c}-channel images, the model takes {}",
                    self.in_channels
                )));
            }
            if h * w > format::MAX_PIXELS {
                return Err(Error::Corrupt(format!("{h}x{w} is too large")));
            }
            pixels = pixels.saturating_add(n.saturating_mul(h * w));
            if pixels > format::MAX_ARCHIVE_PIXELS {
                return Err(Error::Corrupt(format!(
                    "the archive describes more than {} pixels",
                    format::MAX_ARCHIVE_PIXELS
                )));
            }
            seen += n;
            runs.push((n as usize, h as usize, w as usize));
        }
        if seen != count {
            return Err(Error::Corrupt(format!(
                "size runs cover {seen} images, the header says {count}"
            )));
        }
        let lc = r.varint("latent channels")?;
        if lc != self.latent_channels as u64 {
            return Err(Error::Corrupt(format!(
                "latent channels {lc}, this model has {}",
                self.latent_channels
            )));
        }
        if count == 0 {
            return if r.rest().is_empty() {
                Ok(Vec::new())
            } else {
                Err(Error::Corrupt("an empty archive with a payload".into()))
            };
        }
        let words = format::bytes_to_words(r.rest())?;
        let mut coder = DefaultAnsCoder::from_compressed(words)
            .map_err(|_| Error::Corrupt("the payload is not an rANS stream".into()))?;
        let mut out = Vec::with_capacity(count as usize);
        for (n, h, w) in runs {
            let (lh, lw) = self.latent_size(h, w);
            let mut syms = Vec::with_capacity(n);
            for _ in 0..n {
                syms.push(
                    self.tables
                        .decode(&mut coder, self.latent_channels, lh, lw)?,
                );
            }
            let refs: Vec<&Symbols> = syms.iter().collect();
            let images = self.reconstruct(&refs, h, w)?;
            out.extend(
                images
                    .into_iter()
                    .zip(syms)
                    .map(|(image, symbols)| Decoded { image, symbols }),
            );
        }
        if !coder.is_empty() {
            return Err(Error::Corrupt(
                "the payload holds more data than the images need".into(),
            ));
        }
        Ok(out)
    }
}
