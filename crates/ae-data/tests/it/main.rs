//! Integration tests of ae-data (one binary).

mod batching;
mod files;
mod mnist;
mod noise;

use std::path::PathBuf;

/// `../shared/data/<sub>` when it exists; otherwise prints why the test is
/// skipped and returns `None`.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: {} not found (real data is optional)", p.display());
        None
    }
}
