//! A private nats-server for one test: its own port, its own store directory, and
//! `sync_interval: always` where the server knows it (2.10+), as deploy/ requires.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

pub struct NatsServer {
    bin: PathBuf,
    /// Write `sync_interval: always` (where the server supports it).
    pub sync_always: bool,
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    pub version: String,
}

/// The nats-server binary: `$NATS_SERVER`, else `nats-server` on the PATH.
fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn version_of(bin: &PathBuf) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// (major, minor) from "nats-server: v2.15.1".
fn minor(version: &str) -> (u32, u32) {
    let v = version.rsplit('v').next().unwrap_or("");
    let mut it = v.split('.').map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl NatsServer {
    /// Starts a server, or returns `None` (outside CI only) when none is installed.
    pub fn start() -> Option<NatsServer> {
        Self::start_with(true)
    }

    /// As [`NatsServer::start`], choosing the fsync policy.
    pub fn start_with(sync_always: bool) -> Option<NatsServer> {
        let Some(bin) = binary() else {
            if crate::in_ci() {
                panic!("nats-server is not installed: the test command must install it");
            }
            eprintln!("skipping: nats-server not found (run tests/run.sh)");
            return None;
        };
        let version = version_of(&bin);
        let mut server = NatsServer {
            bin,
            sync_always,
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            version,
        };
        server.start_again();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn supports_sync_always(&self) -> bool {
        minor(&self.version) >= (2, 10)
    }

    /// Starts (again) on the same port and store.
    pub fn start_again(&mut self) {
        let store = self.dir.path().join("js");
        let sync = if self.sync_always && self.supports_sync_always() {
            "sync_interval: always"
        } else {
            ""
        };
        let conf = self.dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n  {sync}\n}}\n",
                self.port,
                store.display()
            ),
        )
        .expect("write nats.conf");
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log file");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no clean shutdown, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
