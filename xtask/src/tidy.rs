//! Repository rules, enforced as tests (`cargo test -p xtask`).

use std::collections::BTreeSet;

use crate::project_root;

fn deps(krate: &str) -> BTreeSet<String> {
    let path = project_root().join("crates").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for section in ["dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(section).and_then(|v| v.as_table()) {
            out.extend(t.keys().cloned());
        }
    }
    out
}

fn ae_deps(krate: &str) -> BTreeSet<String> {
    deps(krate)
        .into_iter()
        .filter(|d| d.starts_with("ae-"))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The invariants of docs/ARCHITECTURE.md.
#[test]
fn crate_dependencies_follow_the_architecture() {
    assert_eq!(
        ae_deps("ae-core"),
        set(&[]),
        "ae-core depends on no other ae crate"
    );
    assert_eq!(
        ae_deps("ae-data"),
        set(&[]),
        "ae-data is model-agnostic: no ae-core"
    );
    assert!(
        ae_deps("ae-train").is_subset(&set(&["ae-core", "ae-data"])),
        "ae-train: only ae-core and ae-data"
    );
    assert_eq!(
        ae_deps("ae-codec"),
        set(&["ae-core"]),
        "ae-codec depends on ae-core only"
    );
    let anomaly = ae_deps("ae-anomaly");
    assert!(
        !anomaly.contains("ae-train") && !anomaly.contains("ae-cli"),
        "ae-anomaly must not depend on ae-train"
    );
    for lib in ["ae-core", "ae-data", "ae-train", "ae-anomaly", "ae-codec"] {
        let d = deps(lib);
        for banned in ["anyhow", "clap"] {
            assert!(
                !d.contains(banned),
                "{lib} is a library: `{banned}` belongs in binaries"
            );
        }
    }
    for lib in ["ae-core", "ae-train", "ae-anomaly", "ae-codec"] {
        assert!(
            !deps(lib).contains("candle-datasets"),
            "{lib}: candle-datasets only behind ae-data's `hub` feature"
        );
    }
}

/// One integration-test binary per crate: `tests/it/main.rs`.
#[test]
fn one_integration_test_binary_per_crate() {
    for entry in std::fs::read_dir(project_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let tests = dir.join("tests");
        if !tests.exists() {
            continue;
        }
        for t in std::fs::read_dir(&tests).unwrap() {
            let p = t.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name == "it" || name == "proptest-regressions",
                "{}: put integration tests in tests/it/ (one binary per crate)",
                p.display()
            );
        }
    }
}
