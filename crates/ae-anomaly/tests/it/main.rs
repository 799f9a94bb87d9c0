//! Integration tests of ae-anomaly (one binary).

mod detector;
mod metrics;
mod thresholds;
