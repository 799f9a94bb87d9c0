//! Multinomial logistic regression: the linear probe that says what a set of
//! features (latent codes, PCA codes, raw pixels) is worth for classification.
//!
//! Features are standardised with the training set's mean and deviation, then
//! weights and biases are fitted by mini-batch Adam on the mean cross-entropy
//! plus an L2 penalty on the weights, in a seeded order (deterministic).

use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// Fitting settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRegOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Adam step size.
    pub lr: f64,
    /// L2 weight on the weights (not the biases).
    pub l2: f64,
    /// Seed of the sample order.
    pub seed: u64,
}

impl Default for LogRegOptions {
    fn default() -> Self {
        LogRegOptions {
            epochs: 30,
            batch_size: 256,
            lr: 1e-2,
            l2: 1e-4,
            seed: 0,
        }
    }
}

/// A fitted multinomial logistic regression.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    dim: usize,
    classes: usize,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `dim × classes`, row-major.
    w: Vec<f32>,
    b: Vec<f32>,
}

fn check(x: &[f32], y: Option<&[u32]>, dim: usize, classes: usize) -> Result<usize> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(Error::config(
            "features",
            format!("{} values do not make rows of {dim}", x.len()),
        ));
    }
    let n = x.len() / dim;
    if let Some(y) = y {
        if y.len() != n {
            return Err(Error::config(
                "labels",
                format!("{} labels for {n} samples", y.len()),
            ));
        }
        if let Some(&bad) = y.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::config(
                "labels",
                format!("label {bad} is not below {classes} classes"),
            ));
        }
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::config("features", "contain NaN or infinity"));
    }
    Ok(n)
}

impl LogisticRegression {
    /// Fits on `x` (`n × dim`, row-major) with labels `y` in `0..classes`.
    pub fn fit(
        x: &[f32],
        y: &[u32],
        dim: usize,
        classes: usize,
        o: &LogRegOptions,
    ) -> Result<Self> {
        let n = check(x, Some(y), dim, classes)?;
        if n == 0 || classes < 2 {
            return Err(Error::config(
                "labels",
                format!("need samples of at least 2 classes, found {n} samples, {classes} classes"),
            ));
        }
        let mut mean = vec![0f64; dim];
        let mut sq = vec![0f64; dim];
        for row in x.chunks(dim) {
            for j in 0..dim {
                let v = f64::from(row[j]);
                mean[j] += v;
                sq[j] += v * v;
            }
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let inv_std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(s, &m)| {
                let var = (s / n as f64 - f64::from(m).powi(2)).max(0.0);
                if var > 1e-12 {
                    (1.0 / var.sqrt()) as f32
                } else {
                    0.0 // a constant feature carries nothing
                }
            })
            .collect();
        let mut model = LogisticRegression {
            dim,
            classes,
            mean,
            inv_std,
            w: vec![0.0; dim * classes],
            b: vec![0.0; classes],
        };
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let np = model.w.len() + classes;
        let (mut m1, mut m2) = (vec![0f64; np], vec![0f64; np]);
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ae_data::rng(o.seed);
        let mut t = 0i32;
        let mut xs = vec![0f32; dim];
        let mut p = vec![0f64; classes];
        for _ in 0..o.epochs.max(1) {
            order.shuffle(&mut rng);
            for batch in order.chunks(o.batch_size.max(1)) {
                let mut g = vec![0f64; np];
                for &i in batch {
                    model.standardise(&x[i * dim..(i + 1) * dim], &mut xs);
                    model.probabilities(&xs, &mut p);
                    p[y[i] as usize] -= 1.0;
                    for (j, &v) in xs.iter().enumerate() {
                        if v != 0.0 {
                            let row = &mut g[j * classes..(j + 1) * classes];
                            for (gk, pk) in row.iter_mut().zip(&p) {
                                *gk += f64::from(v) * pk;
                            }
                        }
                    }
                    for (gk, pk) in g[dim * classes..].iter_mut().zip(&p) {
                        *gk += pk;
                    }
                }
                let scale = 1.0 / batch.len() as f64;
                t += 1;
                let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                for k in 0..np {
                    let param = if k < model.w.len() {
                        f64::from(model.w[k])
                    } else {
                        f64::from(model.b[k - model.w.len()])
                    };
                    let reg = if k < model.w.len() { o.l2 * param } else { 0.0 };
                    let gk = g[k] * scale + reg;
                    m1[k] = b1 * m1[k] + (1.0 - b1) * gk;
                    m2[k] = b2 * m2[k] + (1.0 - b2) * gk * gk;
                    let step = o.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + eps);
                    if k < model.w.len() {
                        model.w[k] = (param - step) as f32;
                    } else {
                        model.b[k - model.w.len()] = (param - step) as f32;
                    }
                }
            }
        }
        Ok(model)
    }

    fn standardise(&self, row: &[f32], out: &mut [f32]) {
        for j in 0..self.dim {
            out[j] = (row[j] - self.mean[j]) * self.inv_std[j];
        }
    }

    /// Softmax of the logits of a standardised row into `p`.
    fn probabilities(&self, xs: &[f32], p: &mut [f64]) {
        for (k, pk) in p.iter_mut().enumerate() {
            *pk = f64::from(self.b[k]);
        }
        for (j, &v) in xs.iter().enumerate() {
            if v != 0.0 {
                let row = &self.w[j * self.classes..(j + 1) * self.classes];
                for (pk, wk) in p.iter_mut().zip(row) {
                    *pk += f64::from(v) * f64::from(*wk);
                }
            }
        }
        let m = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for pk in p.iter_mut() {
            *pk = (*pk - m).exp();
            s += *pk;
        }
        for pk in p.iter_mut() {
            *pk /= s;
        }
    }

    /// The most probable class of each row of `x` (`n × dim`).
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u32>> {
        check(x, None, self.dim, self.classes)?;
        let mut xs = vec![0f32; self.dim];
        let mut p = vec![0f64; self.classes];
        Ok(x.chunks(self.dim)
            .map(|row| {
                self.standardise(row, &mut xs);
                self.probabilities(&xs, &mut p);
                p.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(k, _)| k as u32)
            })
            .collect())
    }

    /// Fraction of rows of `x` classified as `y`.
    pub fn accuracy(&self, x: &[f32], y: &[u32]) -> Result<f64> {
        check(x, Some(y), self.dim, self.classes)?;
        let pred = self.predict(x)?;
        let right = pred.iter().zip(y).filter(|(a, b)| a == b).count();
        Ok(right as f64 / y.len().max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_three_gaussian_blobs_and_rejects_bad_labels() {
        let mut rng = ae_data::rng(1);
        let centres = [[0.0f32, 4.0], [4.0, 0.0], [-4.0, -4.0]];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..600 {
            let c = i % 3;
            let e = ae_core::randn(&mut rng, &[2], &candle_core::Device::Cpu)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            x.extend([centres[c][0] + e[0], centres[c][1] + e[1], 7.0]);
            y.push(c as u32);
        }
        let m = LogisticRegression::fit(&x, &y, 3, 3, &LogRegOptions::default()).unwrap();
        assert!(m.accuracy(&x, &y).unwrap() > 0.97);
        assert!(
            LogisticRegression::fit(&x, &vec![5; 600], 3, 3, &LogRegOptions::default()).is_err()
        );
        assert!(m.predict(&[1.0, 2.0]).is_err());
    }
}
