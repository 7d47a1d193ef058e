//! Shared helpers of the conformance harness: locating the repository's test data,
//! finding the external tools the checks need, running the `oxport` binary with a hang
//! guard, reading tar files and starting `oxport serve` processes.
//!
//! Tool policy: `tests/support` (a missing tool fails under CI and is a recorded skip
//! elsewhere); a file using the harness declares `mod support;` too.

#![allow(dead_code)]

pub mod bounded;
pub mod cases;
pub mod claims;
pub mod graph;

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one `oxport` command may run before it is treated as hung. This is a guard
/// against a test that never ends, not a performance assertion.
pub const COMMAND_GUARD: Duration = Duration::from_secs(300);

/// How long a freshly started `oxport serve` may take to accept connections.
pub const SERVER_START_GUARD: Duration = Duration::from_secs(60);

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `oxport` binary built for this test run.
pub fn oxport_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxport"))
}

/// The fixture set every path must pass.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/conformance/buildkit-master")
}

pub fn schemas_dir() -> PathBuf {
    repo_root().join("tests/oci-schema")
}

pub fn compare_py() -> PathBuf {
    repo_root().join("tests/conformance/compare.py")
}

pub fn validator_py() -> PathBuf {
    repo_root().join("tests/harness/oci_validate.py")
}

// The test-support policy (CI, missing tools, skips) lives in `tests/support`; these
// names stay reachable through the harness for the files that glob-import it (not every
// file uses every one).
#[allow(unused_imports)]
pub use crate::support::{announce, in_ci, missing, require_tool, which};

/// Exports the fixture `gw_mp_art` (two platforms, artifact attestations) to the OCI
/// archive `dest` with `attestations-in-index=false`: attestations reachable only
/// through their subjects, the input of the convert and inspect tests of that form.
pub fn export_detached(dest: &Path) {
    let out = Command::new(oxport_bin())
        .args(["export", "--result"])
        .arg(fixtures_dir().join("gw_mp_art/case.json"))
        .arg("--output")
        .arg(format!(
            "type=oci,dest={},attestations-in-index=false",
            dest.display()
        ))
        .output()
        .expect("run oxport export");
    assert!(
        out.status.success(),
        "export of gw_mp_art with attestations-in-index=false: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a named pipe at `p`: an input that blocks whoever opens it for reading, for the
/// tests that oxport refuses such files instead of hanging.
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Builds the Go program in `dir` (an oracle of the tests) into `exe`; panics with go's
/// output when it fails.
pub fn go_build(go: &Path, dir: &Path, exe: &Path, env: &[(&str, &str)]) {
    let mut cmd = Command::new(go);
    cmd.current_dir(dir).args(["build", "-o"]).arg(exe).arg(".");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run go build");
    assert!(
        out.status.success(),
        "go build {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python3` is needed by every conformance check (compare.py); it is never optional.
pub fn python3() -> PathBuf {
    which("python3").expect("python3 is required by tests/conformance/compare.py")
}

/// A Python interpreter that can import `jsonschema`, for the schema checks. Tries
/// `$OXPORT_PYTHON`, then `python3` on PATH, then the system interpreter (where Debian's
/// python3-jsonschema installs).
pub fn python_with_jsonschema() -> Option<PathBuf> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("OXPORT_PYTHON") {
        candidates.push(p);
    }
    candidates.push("python3".into());
    candidates.push("/usr/bin/python3".into());
    for c in &candidates {
        let Some(exe) = which(c) else { continue };
        let ok = Command::new(&exe)
            .args(["-c", "import jsonschema"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(exe);
        }
    }
    missing(
        "no Python interpreter can import jsonschema",
        "OCI schema validation of the exported documents",
    )
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Outcome {
    /// None when the process was killed by a signal or by the hang guard.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub hung: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// A short description for failure reports: exit status and the tail of stderr.
    pub fn describe(&self) -> String {
        let status = if self.hung {
            format!("killed after {}s (hung)", COMMAND_GUARD.as_secs())
        } else {
            match self.status {
                Some(s) => s.to_string(),
                None => "no exit status".into(),
            }
        };
        format!("{status}; stderr: {}", tail(&self.stderr, 600))
    }
}

/// The last `max` characters of a text, on one line.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim().replace('\n', " | ");
    let n = s.chars().count();
    if n <= max {
        s
    } else {
        format!("...{}", s.chars().skip(n - max).collect::<String>())
    }
}

/// Runs a command with its output sent to files in `scratch` (so that large output
/// cannot block it), killing it if it outlives [`COMMAND_GUARD`].
pub fn run(cmd: &mut Command, scratch: &Path) -> Outcome {
    let out_path = scratch.join(".stdout");
    let err_path = scratch.join(".stderr");
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                status: None,
                stdout: Vec::new(),
                stderr: format!("cannot start {cmd:?}: {e}"),
                hung: false,
            }
        }
    };
    let started = Instant::now();
    let (status, hung) = loop {
        match child.try_wait() {
            Ok(Some(s)) => break (Some(s), false),
            Ok(None) if started.elapsed() > COMMAND_GUARD => {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = fs::read(&out_path).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    Outcome {
        status,
        stdout,
        stderr,
        hung,
    }
}

/// A running `oxport serve`, stopped (by its own process id) when dropped.
pub struct Server {
    child: Child,
    /// The address to pass to `oxport export --addr`.
    pub addr: String,
    log: PathBuf,
}

/// Where a server listens.
pub enum Listen {
    Unix(PathBuf),
    Tcp,
}

impl Server {
    /// Starts `oxport serve --listen ... --state <dir>/state` and waits until it accepts
    /// connections. Errors carry the server's log.
    pub fn start(listen: Listen, dir: &Path) -> Result<Server, String> {
        let state = dir.join("state");
        fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        let log = dir.join("server.log");
        let (addr, probe): (String, Box<dyn Fn() -> bool>) = match listen {
            Listen::Unix(sock) => {
                let addr = format!("unix://{}", sock.display());
                let s = sock.clone();
                (
                    addr,
                    Box::new(move || std::os::unix::net::UnixStream::connect(&s).is_ok()),
                )
            }
            Listen::Tcp => {
                let port = free_tcp_port()?;
                let sa = format!("127.0.0.1:{port}");
                let s = sa.clone();
                (
                    format!("tcp://{sa}"),
                    Box::new(move || TcpStream::connect(&s).is_ok()),
                )
            }
        };
        let logf = fs::File::create(&log).map_err(|e| e.to_string())?;
        let logf2 = logf.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(oxport_bin())
            .args(["serve", "--listen", &addr, "--state"])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::from(logf))
            .stderr(Stdio::from(logf2))
            .spawn()
            .map_err(|e| format!("cannot start oxport serve: {e}"))?;
        let mut server = Server { child, addr, log };
        let started = Instant::now();
        loop {
            if probe() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "oxport serve --listen {} exited ({status}) before accepting connections; log: {}",
                    server.addr,
                    server.log_tail()
                ));
            }
            if started.elapsed() > SERVER_START_GUARD {
                return Err(format!(
                    "oxport serve --listen {} did not accept connections within {}s; log: {}",
                    server.addr,
                    SERVER_START_GUARD.as_secs(),
                    server.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self) -> String {
        tail(&fs::read_to_string(&self.log).unwrap_or_default(), 600)
    }

    /// True while the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the server's `grpc.health.v1` service; Ok when it answers SERVING.
    pub fn health(&self) -> Result<(), String> {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let client = oxport::client::Client::connect(&self.addr)
                .await
                .map_err(|e| format!("health: connect {}: {e}", self.addr))?;
            let resp = HealthClient::new(client.channel())
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|e| format!("health check failed: {e}"))?;
            match resp.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("health check answered {other:?}")),
            }
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The regular files of a tar archive, in archive order: (name, bytes). Names come whole
/// from the USTAR prefix, PAX `path` records or GNU long names (the `tar` crate reads them);
/// other entry types are skipped.
pub fn read_tar(path: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let file = fs::File::open(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data)
            .map_err(|e| format!("{}: entry {name}: {e}", path.display()))?;
        if data.len() as u64 != entry.size() {
            return Err(format!("entry {name} runs past the end of the archive"));
        }
        out.push((name, data));
    }
    Ok(out)
}

/// The regular files of a directory tree, keyed by their `/`-separated relative path.
pub fn read_tree(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out).map_err(|e| format!("read {}: {e}", root.display()))?;
    Ok(out)
}

/// Names of the entries of a directory (not recursive), sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Validates layouts (tar files or directories) with tests/harness/oci_validate.py.
pub fn validate_layouts(python: &Path, layouts: &[&Path], scratch: &Path) -> Result<(), String> {
    let mut cmd = Command::new(python);
    cmd.arg(validator_py())
        .arg("--schemas")
        .arg(schemas_dir())
        .args(layouts);
    let o = run(&mut cmd, scratch);
    if o.success() {
        Ok(())
    } else {
        Err(format!(
            "schema validation failed: {} {}",
            tail(&String::from_utf8_lossy(&o.stdout), 900),
            tail(&o.stderr, 300)
        ))
    }
}

/// Reads an OCI archive with skopeo: `skopeo inspect --raw` and `skopeo copy --all` into a
/// fresh layout, once per image in index.json (addressed by its ref name when there are
/// several).
pub fn skopeo_check(skopeo: &Path, tar: &Path, scratch: &Path) -> Result<(), String> {
    let files = read_tar(tar)?;
    let index = files
        .iter()
        .find(|(n, _)| n == "index.json")
        .ok_or("archive has no index.json")?;
    let index: serde_json::Value =
        serde_json::from_slice(&index.1).map_err(|e| format!("index.json: {e}"))?;
    let entries = index["manifests"]
        .as_array()
        .ok_or("index.json has no manifests array")?;
    let mut refs: Vec<Option<String>> = Vec::new();
    if entries.len() == 1 {
        refs.push(None);
    } else {
        let names: Vec<Option<&str>> = entries
            .iter()
            .map(|e| e["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .collect();
        for n in names.iter().flatten() {
            if names.iter().filter(|m| **m == Some(*n)).count() == 1 {
                refs.push(Some(n.to_string()));
            }
        }
        if refs.is_empty() {
            return Err(format!(
                "index.json has {} entries and no unique ref name to address one",
                entries.len()
            ));
        }
    }
    for (i, r) in refs.iter().enumerate() {
        let src = match r {
            None => format!("oci-archive:{}", tar.display()),
            Some(r) => format!("oci-archive:{}:{r}", tar.display()),
        };
        let o = run(
            Command::new(skopeo).args(["inspect", "--raw", &src]),
            scratch,
        );
        if !o.success() {
            return Err(format!("skopeo inspect --raw {src}: {}", o.describe()));
        }
        let dest = scratch.join(format!("skopeo-copy-{i}"));
        let dst = format!("oci:{}", dest.display());
        let o = run(
            Command::new(skopeo).args(["copy", "--quiet", "--all", &src, &dst]),
            scratch,
        );
        let _ = fs::remove_dir_all(&dest);
        if !o.success() {
            return Err(format!("skopeo copy --all {src}: {}", o.describe()));
        }
    }
    Ok(())
}
