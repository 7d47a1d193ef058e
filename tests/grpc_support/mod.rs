//! Shared by the gRPC and CLI tests: runs the built `oxport serve` as a real
//! process on a real socket, and finds the conformance fixtures.

#![allow(dead_code)]

pub mod corpus;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oxport::client::Client;

pub const BIN: &str = env!("CARGO_BIN_EXE_oxport");

/// Runs the `oxport` command with `args` to the end, without the caller's
/// `RUST_LOG`, so its output is what a user sees.
pub fn oxport(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run oxport")
}

/// What a finished command wrote to its standard error.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fixture case.json; fails the test (never skips) when it is absent.
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/buildkit-master")
        .join(name)
        .join("case.json");
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path
}

/// The `expect` object of a fixture.
pub fn expected(case: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(case).unwrap()).unwrap();
    v["expect"].clone()
}

/// The lines of a server's stderr, echoed (captured by the test harness) and sent to
/// the returned channel. The reader drains to the end even when nobody listens, so the
/// server never blocks on a full pipe.
pub fn forward_lines(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[server] {line}");
            let _ = tx.send(line);
        }
    });
    lines
}

/// The next line from `lines` containing `text`; panics after `timeout`.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("the server never logged {text:?}"),
        }
    }
}

/// A client of the server on the unix socket `socket`, retried for up to 30 s while
/// the server starts.
pub async fn connect_unix(socket: &Path) -> Client {
    let addr = format!("unix://{}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(&addr).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connect {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A running `oxport serve`, killed when dropped.
pub struct ServerProc {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for the address announcement.
    early: std::sync::Mutex<Vec<String>>,
}

impl ServerProc {
    /// Serves on a unix socket in a fresh directory.
    pub fn unix() -> ServerProc {
        Self::unix_with(&[])
    }

    /// Serves on a unix socket with extra `oxport serve` flags.
    pub fn unix_with(flags: &[&str]) -> ServerProc {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("unix://{}", dir.path().join("run/oxport.sock").display());
        Self::start(dir, &addr, None, flags)
    }

    /// Serves on 127.0.0.1 with a port the kernel picks.
    pub fn tcp() -> ServerProc {
        Self::tcp_with("tcp://127.0.0.1:0", &[])
    }

    /// Serves on a TCP address (port 0: the kernel picks) with extra flags.
    pub fn tcp_with(listen: &str, flags: &[&str]) -> ServerProc {
        let dir = tempfile::tempdir().unwrap();
        Self::start(dir, listen, Some("listening on tcp://"), flags)
    }

    fn start(
        dir: tempfile::TempDir,
        listen: &str,
        announce: Option<&str>,
        flags: &[&str],
    ) -> ServerProc {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--state"])
            .arg(dir.path().join("state"))
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("OXPORT_TEST_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oxport serve");
        let lines = forward_lines(child.stderr.take().unwrap());
        let mut early = Vec::new();
        let addr = match announce {
            None => listen.to_string(),
            Some(prefix) => {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let line = lines
                        .recv_timeout(left)
                        .expect("server announced its address");
                    if let Some(i) = line.find(prefix) {
                        let rest = &line[i + "listening on ".len()..];
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                    early.push(line);
                }
            }
        };
        ServerProc {
            child,
            addr,
            dir,
            lines,
            early: std::sync::Mutex::new(early),
        }
    }

    /// Waits for a server log line containing `text`.
    pub fn wait_for_line(&self, text: &str, timeout: Duration) -> String {
        {
            let mut early = self.early.lock().unwrap();
            if let Some(i) = early.iter().position(|l| l.contains(text)) {
                return early.drain(..=i).next_back().unwrap();
            }
        }
        wait_for_line(&self.lines, text, timeout)
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn socket(&self) -> Option<PathBuf> {
        self.addr.strip_prefix("unix://").map(PathBuf::from)
    }

    /// Connects, retrying while the server starts.
    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&self.addr).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("connect {}: {e}", self.addr),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes that span several 1 MiB chunks, distinct per seed.
pub fn blob(seed: u8, len: usize) -> Vec<u8> {
    let mut x = seed as u32 | 0x9e37_0000;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn digest_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}
