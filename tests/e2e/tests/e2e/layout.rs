//! The project's layout rules: the fixed top level, and no I/O crate anywhere in the
//! dependency tree of a crate under `core/`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

const IO_CRATES: &[&str] = &[
    "sqlx",
    "sqlx-core",
    "async-nats",
    "axum",
    "hyper",
    "datafusion",
    "parquet",
    "arrow",
    "ldap3_proto",
    "radius",
    "aws-sdk-s3",
    "aws-config",
    "reqwest",
    "tokio-postgres",
    "rusqlite",
    "libsqlite3-sys",
];

#[test]
fn core_crates_depend_on_no_io_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let core_dir = root().join("core");
    let core_ids: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| PathBuf::from(p["manifest_path"].as_str().unwrap()).starts_with(&core_dir))
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(core_ids.len() >= 2, "core crates found: {core_ids:?}");
    let graph: HashMap<&str, Vec<(&str, bool)>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    // A dev-only edge does not ship in the crate.
                    let normal = d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null());
                    (d["pkg"].as_str().unwrap(), normal)
                })
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    for core in core_ids {
        let mut seen = BTreeSet::new();
        let mut todo = vec![core];
        while let Some(id) = todo.pop() {
            for (dep, normal) in &graph[id] {
                if *normal && seen.insert(*dep) {
                    todo.push(dep);
                }
            }
        }
        let bad: Vec<&str> = seen
            .iter()
            .map(|id| names[id])
            .filter(|n| IO_CRATES.contains(n))
            .collect();
        assert!(
            bad.is_empty(),
            "{} depends on I/O crates {bad:?}",
            names[core]
        );
    }
}

#[test]
fn the_top_level_is_the_fixed_layout() {
    let allowed = [
        "Cargo.toml",
        "Cargo.lock",
        "core",
        "projections",
        "adapters",
        "insights",
        "exporters",
        "tests",
        "deploy",
        "README.md",
        "LICENSE",
        "ARCHITECTURE.md",
        "target",
        "castellan-data",
    ];
    for entry in std::fs::read_dir(root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        assert!(
            allowed.contains(&name.as_str()),
            "{name} is outside the fixed top-level layout"
        );
    }
    for required in [
        "Cargo.toml",
        "core",
        "projections",
        "adapters",
        "insights",
        "exporters",
        "tests",
        "deploy",
        "README.md",
    ] {
        assert!(root().join(required).exists(), "{required} is missing");
    }
}
