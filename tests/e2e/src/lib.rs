//! Support for the end-to-end suite (the tests themselves are in `tests/e2e.rs`).
//!
//! Map of the modules:
//! - [`nats`]: starts a private nats-server on a free loopback port, kills and restarts it.
//! - [`postgres`]: the PostgreSQL server the test command provides; a database per test.
//! - [`node`]: a Castellan node in-process on port 0, and bootstrap of an org with a key.
//! - [`contract`]: the event-log contract, run against every adapter.
//! - [`ports`]: free loopback ports.
//! - [`smtp`]: a real SMTP server (aiosmtpd) writing what it receives to a Maildir.
//! - [`s3`]: the S3-compatible server (Garage) the test command starts.

pub mod contract;
pub mod nats;
pub mod node;
pub mod ports;
pub mod postgres;
pub mod s3;
pub mod smtp;

/// True when running under CI, where no backing service may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false")
        .unwrap_or(false)
}

/// A Python that can `import module` (`CASTELLAN_TEST_PYTHON`, set by tests/run.sh).
/// In CI a missing one fails the test; elsewhere the check is skipped.
pub fn python_with(module: &str) -> Option<String> {
    let python = std::env::var("CASTELLAN_TEST_PYTHON").ok();
    let ok = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if ok {
        return python;
    }
    if in_ci() {
        panic!("CASTELLAN_TEST_PYTHON has no {module}: tests/run.sh installs it");
    }
    eprintln!("skipping the {module} check: set CASTELLAN_TEST_PYTHON (run tests/run.sh)");
    None
}
