//! The processes a bench run starts: `oxport serve`, `docker-registry`, and
//! the reference tools, each timed or measured from outside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OXPORT: &str = env!("CARGO_BIN_EXE_oxport");

fn wait_until(what: &str, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before it was ready");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An `oxport serve` on a unix socket with its own state directory.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        std::fs::create_dir_all(dir).expect("server dir");
        let socket = dir.join("oxport.sock");
        let log = std::fs::File::create(dir.join("serve.log")).expect("server log");
        let mut child = Command::new(OXPORT)
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .arg("--state")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start oxport serve");
        wait_until("oxport serve", &mut child, || socket.exists());
        Server {
            child,
            addr: format!("unix://{}", socket.display()),
        }
    }

    /// The server's peak resident set so far, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `docker-registry` on 127.0.0.1 with a temporary storage directory.
pub struct Registry {
    child: Child,
    pub host: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start docker-registry");
        wait_until("docker-registry", &mut child, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Registry {
            child,
            host: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sync`, then a 10 s sleep, before every timed step (ours and the
/// references'), and nothing else: the page cache is not dropped. The sync is
/// meant to keep the kernel's writeback of one step out of the time of the
/// next; the sleep is meant to give a virtual machine with free-page reporting
/// time to return the memory the previous step freed.
pub fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(SETTLE);
}

const SETTLE: Duration = Duration::from_secs(10);

/// Settles, then times `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    settle();
    let t0 = Instant::now();
    let out = f();
    (out, t0.elapsed())
}

/// Runs `sh -c script` after [`settle`] and returns its wall time; panics
/// when it fails.
pub fn timed_shell(script: &str) -> Duration {
    settle();
    let started = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .output()
        .expect("run sh");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Single-quotes a path for `sh`.
pub fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

pub fn have(tool: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(tool))
        .any(|p: PathBuf| p.is_file())
}
