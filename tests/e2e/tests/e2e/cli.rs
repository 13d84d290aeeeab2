//! The binary as an operator meets it: bootstrap, events tail, projections rebuild,
//! and one-line errors for bad configuration, unreachable stores and foreign files.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_castellan-e2e-server");

fn castellan(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("CASTELLAN_DATA_DIR", dir)
        .env("CASTELLAN_LOGGING_LEVEL", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run castellan")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("castellan: "), "{err}");
    err
}

#[test]
fn bootstrap_then_tail_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    let out = castellan(
        dir.path(),
        &[
            "bootstrap",
            "--org-name",
            "Acme",
            "--admin-email",
            "root@acme.test",
            "--admin-password-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(boot["org_id"].as_str().unwrap().len(), 24);
    assert_eq!(boot["admin_id"].as_str().unwrap().len(), 24);
    assert_eq!(boot["api_key"].as_str().unwrap().len(), 40);

    // The same email cannot bootstrap a second admin.
    let again = castellan(
        dir.path(),
        &[
            "bootstrap",
            "--org-name",
            "Other",
            "--admin-email",
            "ROOT@acme.test",
        ],
        &[],
    );
    let err = one_line_error(&again);
    assert!(
        err.contains("admin_email") && err.contains("already in use"),
        "{err}"
    );

    let out = castellan(
        dir.path(),
        &["events", "tail", "--from", "0", "--no-follow"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    // The failed second bootstrap left its organization (the org is created first).
    assert_eq!(
        &types[..4],
        [
            "organization_create",
            "unique_claim",
            "admin_create",
            "admin_update"
        ],
        "{types:?}"
    );
    let admin = &events[2];
    assert!(admin["payload"]["password_hash"]
        .as_str()
        .unwrap()
        .starts_with("$argon2id$"));
    assert!(events
        .windows(2)
        .all(|w| w[0]["position"].as_u64() <= w[1]["position"].as_u64()));

    let out = castellan(dir.path(), &["projections", "rebuild"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["projection"], "portal");
    assert_eq!(summary["position"], events.last().unwrap()["position"]);
    assert_eq!(summary["events_failed"], 0);
}

#[test]
fn bad_configuration_is_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("castellan.toml");
    std::fs::write(&toml, "[http]\nlisten = 12\n").unwrap();
    let err = one_line_error(&castellan(
        dir.path(),
        &["--config", toml.to_str().unwrap(), "serve"],
        &[],
    ));
    assert!(err.contains("listen"), "{err}");

    std::fs::write(&toml, "data_dir = [\n").unwrap();
    let err = one_line_error(&castellan(
        dir.path(),
        &["--config", toml.to_str().unwrap(), "serve"],
        &[],
    ));
    assert!(err.contains("castellan.toml"), "{err}");

    let err = one_line_error(&castellan(
        dir.path(),
        &["serve"],
        &[("CASTELLAN_LOG_URL", "kafka://x")],
    ));
    assert!(err.contains("log.url"), "{err}");
    let err = one_line_error(&castellan(
        dir.path(),
        &["serve"],
        &[("CASTELLAN_READ_STORE_URL_FILE", "/nonexistent/secret")],
    ));
    assert!(err.contains("CASTELLAN_READ_STORE_URL_FILE"), "{err}");
}

#[test]
fn unreachable_stores_fail_fast_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let port = castellan_e2e::ports::free_port();
    let started = Instant::now();
    let err = one_line_error(&castellan(
        dir.path(),
        &["serve"],
        &[("CASTELLAN_LOG_URL", &format!("nats://127.0.0.1:{port}"))],
    ));
    assert!(err.contains("log.url"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let err = one_line_error(&castellan(
        dir.path(),
        &["serve"],
        &[(
            "CASTELLAN_READ_STORE_URL",
            &format!("postgres://castellan:secret@127.0.0.1:{port}/x"),
        )],
    ));
    assert!(err.contains("read_store.url"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password is not printed: {err}"
    );
}

#[test]
fn corrupt_or_foreign_sqlite_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.db");
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&events, &garbage).unwrap();
    let err = one_line_error(&castellan(dir.path(), &["serve"], &[]));
    assert!(
        err.contains("events.db") && err.contains("not a SQLite database"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&events).unwrap(),
        garbage,
        "the file is untouched"
    );
    assert!(
        !dir.path().join("read.db").exists(),
        "nothing else was created"
    );

    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table notes(x)'); c.commit()"])
        .arg(dir.path().join("events.db"))
        .status()
        .unwrap();
    assert!(status.success());
    let err = one_line_error(&castellan(dir.path(), &["serve"], &[]));
    assert!(
        err.contains("events.db") && err.contains("another application"),
        "{err}"
    );
}

#[test]
fn keys_new_makes_a_key_and_reseal_reports_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = castellan(dir.path(), &["keys", "new", "--id", "k9"], &[]);
    assert!(out.status.success());
    let entry = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(entry.starts_with("k9:"), "{entry}");
    let keys = castellan_app::sealing::Keyring::parse(&entry).unwrap();
    assert_eq!(keys.current_id(), "k9");
    let err = one_line_error(&castellan(
        dir.path(),
        &["keys", "new", "--id", "bad/id"],
        &[],
    ));
    assert!(err.contains("--id"), "{err}");

    let out = castellan(
        dir.path(),
        &["keys", "reseal", "--dry-run"],
        &[("CASTELLAN_SECURITY_ENCRYPTION_KEYS", &entry)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["report"]["accounts_seen"], 0);
    assert_eq!(report["report"]["key_id"], "k9");
}
