//! Vectors from CSV files, and time series cut into windows.

use std::collections::HashMap;
use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{Error, Result};

fn parse_value(path: &Path, line: usize, column: &str, field: &str) -> Result<f32> {
    let v: f32 = field.trim().parse().map_err(|_| {
        Error::format(
            path,
            format!("line {line}, column `{column}`: `{field}` is not a number"),
        )
    })?;
    if !v.is_finite() {
        return Err(Error::format(
            path,
            format!("line {line}, column `{column}`: value {v} is not finite"),
        ));
    }
    Ok(v)
}

/// Loads a CSV with a header row as vectors: every column is a feature except
/// `label_column` (non-negative integer class labels), if given.
///
/// Samples are `[D]` with `D` the number of feature columns.
pub fn load_csv_vectors(path: &Path, label_column: Option<&str>) -> Result<Dataset> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| Error::format(path, e.to_string()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::format(path, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let label_idx = match label_column {
        Some(name) => Some(headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::format(path, format!("no column `{name}` in header {headers:?}"))
        })?),
        None => None,
    };
    let dim = headers.len() - usize::from(label_idx.is_some());
    if dim == 0 {
        return Err(Error::format(path, "no feature columns"));
    }
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| Error::format(path, format!("line {line}: {e}")))?;
        if record.len() != headers.len() {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: expected {} fields, found {}",
                    headers.len(),
                    record.len()
                ),
            ));
        }
        for (i, field) in record.iter().enumerate() {
            if Some(i) == label_idx {
                let l: u32 = field.trim().parse().map_err(|_| {
                    Error::format(
                        path,
                        format!("line {line}: label `{field}` is not a non-negative integer"),
                    )
                })?;
                labels.push(l);
            } else {
                data.push(parse_value(path, line, &headers[i], field)?);
            }
        }
    }
    if data.is_empty() {
        return Err(Error::format(path, "no data rows"));
    }
    Dataset::new(
        format!("vectors in {}", path.display()),
        vec![dim],
        data,
        label_idx.map(|_| labels),
    )
}

/// A univariate time series: timestamps (as written) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// One timestamp per value, as in the file.
    pub timestamps: Vec<String>,
    /// The values.
    pub values: Vec<f32>,
}

/// Reads a `timestamp,value` CSV with a header (the NAB format).
pub fn load_series_csv(path: &Path) -> Result<Series> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| Error::format(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::format(path, e.to_string()))?
        .clone();
    if headers.len() != 2 {
        return Err(Error::format(
            path,
            format!(
                "expected two columns `timestamp,value`, found {:?}",
                headers.iter().collect::<Vec<_>>()
            ),
        ));
    }
    let mut s = Series {
        timestamps: Vec::new(),
        values: Vec::new(),
    };
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| Error::format(path, format!("line {line}: {e}")))?;
        s.timestamps.push(record[0].to_string());
        s.values
            .push(parse_value(path, line, &headers[1], &record[1])?);
    }
    if s.values.is_empty() {
        return Err(Error::format(path, "no data rows"));
    }
    Ok(s)
}

impl Series {
    /// Windows of `length` values every `stride` steps, as a dataset of
    /// `[1, length]` samples whose keys are the windows' start timestamps.
    /// Labels: 1 when the window overlaps a labelled anomaly in `anomalies`
    /// (inclusive `(start, end)` timestamp pairs, compared as strings, which is
    /// right for ISO-like timestamps), 0 otherwise; none when `anomalies` is
    /// `None`.
    pub fn windows(
        &self,
        length: usize,
        stride: usize,
        anomalies: Option<&[(String, String)]>,
    ) -> Result<Dataset> {
        if length == 0 || stride == 0 {
            return Err(Error::config(
                "window",
                format!("length and stride must be at least 1, found {length} and {stride}"),
            ));
        }
        if length > self.values.len() {
            return Err(Error::config(
                "window.length",
                format!(
                    "{length} is longer than the series ({} values)",
                    self.values.len()
                ),
            ));
        }
        let starts: Vec<usize> = (0..=self.values.len() - length).step_by(stride).collect();
        let mut data = Vec::with_capacity(starts.len() * length);
        for &s in &starts {
            data.extend_from_slice(&self.values[s..s + length]);
        }
        let labels = anomalies.map(|spans| {
            starts
                .iter()
                .map(|&s| {
                    let (a, b) = (&self.timestamps[s], &self.timestamps[s + length - 1]);
                    u32::from(spans.iter().any(|(lo, hi)| a <= hi && b >= lo))
                })
                .collect()
        });
        let keys = starts.iter().map(|&s| self.timestamps[s].clone()).collect();
        Dataset::new(
            format!("windows of {length} every {stride}"),
            vec![1, length],
            data,
            labels,
        )?
        .with_keys(keys)
    }
}

/// Reads NAB's `combined_windows.json`: for each series (`dir/file.csv`), its
/// anomaly windows as `(start, end)` timestamps. NAB writes timestamps with
/// fractional seconds (`2014-04-10 07:15:00.000000`); they are cut to the
/// `YYYY-MM-DD HH:MM:SS` form of the data files.
pub fn load_nab_windows(path: &Path) -> Result<HashMap<String, Vec<(String, String)>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let raw: HashMap<String, Vec<Vec<String>>> = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, format!("not NAB window JSON: {e}")))?;
    let cut = |s: &str| s.get(..19).unwrap_or(s).to_string();
    raw.into_iter()
        .map(|(k, spans)| {
            let spans = spans
                .into_iter()
                .map(|w| match w.as_slice() {
                    [a, b] => Ok((cut(a), cut(b))),
                    _ => Err(Error::format(
                        path,
                        format!("{k}: a window must be [start, end], found {w:?}"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((k, spans))
        })
        .collect()
}
