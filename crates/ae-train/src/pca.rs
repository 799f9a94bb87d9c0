//! Principal component analysis: the linear baseline an autoencoder should
//! beat at the same code size. Fitted with faer's self-adjoint
//! eigendecomposition of the covariance matrix (f64).

use ae_data::Dataset;
use faer::{Mat, Side};

use crate::error::{Error, Result};

/// A fitted PCA: the mean and the top `k` principal directions.
#[derive(Debug, Clone)]
pub struct Pca {
    mean: Vec<f64>,
    /// `k` unit vectors of length `d`, by decreasing variance.
    components: Vec<Vec<f64>>,
    /// Variance along each component.
    pub explained_variance: Vec<f64>,
}

impl Pca {
    /// Fits `k` components on the samples of `data` (flattened).
    pub fn fit(data: &Dataset, k: usize) -> Result<Self> {
        let (n, d) = (data.len(), data.per_sample());
        if k == 0 || k > d {
            return Err(Error::config(
                "components",
                format!("must be 1 to {d}, found {k}"),
            ));
        }
        if n < 2 {
            return Err(Error::config(
                "data",
                format!("PCA needs at least 2 samples, found {n}"),
            ));
        }
        let mut mean = vec![0f64; d];
        for i in 0..n {
            for (m, &v) in mean.iter_mut().zip(data.sample(i)) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let x = Mat::<f64>::from_fn(n, d, |i, j| f64::from(data.sample(i)[j]) - mean[j]);
        let cov = (x.transpose() * &x) * faer::Scale(1.0 / (n as f64 - 1.0));
        let eig = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::config("pca", format!("eigendecomposition failed: {e:?}")))?;
        let (u, s) = (eig.U(), eig.S().column_vector());
        // Eigenvalues come in nondecreasing order: take the last k, largest first.
        let idx: Vec<usize> = (0..d).rev().take(k).collect();
        Ok(Pca {
            mean,
            components: idx
                .iter()
                .map(|&c| (0..d).map(|r| u[(r, c)]).collect())
                .collect(),
            explained_variance: idx.iter().map(|&c| s[c]).collect(),
        })
    }

    /// Number of components.
    pub fn k(&self) -> usize {
        self.components.len()
    }

    /// The code of one sample: its coordinates along the components.
    pub fn transform(&self, x: &[f32]) -> Vec<f64> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(x)
                    .zip(&self.mean)
                    .map(|((c, &v), m)| c * (f64::from(v) - m))
                    .sum()
            })
            .collect()
    }

    /// The reconstruction of one sample from its code.
    pub fn reconstruct(&self, x: &[f32]) -> Vec<f64> {
        let code = self.transform(x);
        let mut out = self.mean.clone();
        for (c, a) in self.components.iter().zip(&code) {
            for (o, v) in out.iter_mut().zip(c) {
                *o += a * v;
            }
        }
        out
    }

    /// Squared reconstruction error summed over each sample, averaged over
    /// the samples of `data`.
    pub fn sse_per_sample(&self, data: &Dataset) -> f64 {
        let total: f64 = (0..data.len())
            .map(|i| {
                let x = data.sample(i);
                self.reconstruct(x)
                    .iter()
                    .zip(x)
                    .map(|(r, &v)| (r - f64::from(v)).powi(2))
                    .sum::<f64>()
            })
            .sum();
        total / data.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_planted_direction() {
        // Points along (3, 4)/5 with a little noise across it.
        let mut v = Vec::new();
        for i in 0..200 {
            let t = (i as f32 - 100.0) / 10.0;
            let e = if i % 2 == 0 { 0.01 } else { -0.01 };
            v.extend([1.0 + 0.6 * t - 0.8 * e, 2.0 + 0.8 * t + 0.6 * e]);
        }
        let d = Dataset::new("line", vec![2], v, None).unwrap();
        let p = Pca::fit(&d, 1).unwrap();
        let c = &p.components[0];
        assert!(
            (c[0].abs() - 0.6).abs() < 1e-4 && (c[1].abs() - 0.8).abs() < 1e-4,
            "{c:?}"
        );
        assert!(p.sse_per_sample(&d) < 1e-3);
        let full = Pca::fit(&d, 2).unwrap();
        assert!(full.sse_per_sample(&d) < 1e-9);
        assert!(p.explained_variance[0] > 1000.0 * full.explained_variance[1]);
        assert!(Pca::fit(&d, 3).is_err());
    }
}
