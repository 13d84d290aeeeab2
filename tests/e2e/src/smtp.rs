//! A real SMTP server for one test: aiosmtpd (PyPI) on a free loopback port, writing
//! every message it accepts into a Maildir. `CASTELLAN_TEST_SMTPD_PYTHON` names a
//! Python with aiosmtpd installed (tests/run.sh sets it).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

pub struct SmtpServer {
    python: String,
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Picks a port; the server starts with [`SmtpServer::start`]. `None` (outside CI
    /// only) when no Python with aiosmtpd is configured.
    pub fn new() -> Option<SmtpServer> {
        let Ok(python) = std::env::var("CASTELLAN_TEST_SMTPD_PYTHON") else {
            if crate::in_ci() {
                panic!("CASTELLAN_TEST_SMTPD_PYTHON is not set: tests/run.sh installs aiosmtpd");
            }
            eprintln!("skipping: CASTELLAN_TEST_SMTPD_PYTHON not set (run tests/run.sh)");
            return None;
        };
        Some(SmtpServer {
            python,
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        })
    }

    pub fn start(&mut self) {
        let maildir = self.dir.path().join("mail");
        let child = Command::new(&self.python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received so far, raw (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let dir: PathBuf = self.dir.path().join("mail").join("new");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    /// Waits for a message whose headers name `to`; its body with quoted-printable undone.
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m.lines().any(|l| l.starts_with("To: ") && l.contains(to)))
            {
                return decode_quoted_printable(&m);
            }
            assert!(
                Instant::now() < deadline,
                "no email to {to} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Joins soft line breaks and decodes `=XX` (enough for ASCII bodies).
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::with_capacity(joined.len());
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '=' {
            let hex: String = chars.clone().take(2).collect();
            if hex.len() == 2 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                chars.next();
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}
