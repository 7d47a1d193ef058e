//! Registries for the push tests: Debian's `docker-registry` (CNCF
//! distribution) started on loopback with a free port and a temporary
//! storage directory, with or without htpasswd Basic auth; a raw HTTP reader
//! that does not share code with oxport's client; `oxport serve` with a
//! chosen environment; a TCP proxy that kills the registry when it sees a
//! given request; and the setup the push tests share (Docker configs, the
//! CLI, the example pushed through the library client). A missing registry
//! follows `tests/support`: a failure under CI, a recorded skip elsewhere.

#![allow(dead_code)]

pub mod fake;
pub mod faults;
pub mod hostile;
pub mod tls;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{missing, which};

pub const BIN: &str = env!("CARGO_BIN_EXE_oxport");
pub const USER: &str = "oxport";
pub const PASSWORD: &str = "correct-horse";

/// How long a process may take to accept connections (a hang guard).
const START_GUARD: Duration = Duration::from_secs(60);

/// The example build result every push test uses.
pub fn example_case() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-platform/case.json")
}

/// What the registry tests cannot do without `docker-registry` and its auth entry.
const PURPOSE: &str = "the registry tests (a real docker-registry)";

/// A bcrypt htpasswd line, from `htpasswd` (apache2-utils) or Python's crypt.
fn htpasswd_line(user: &str, password: &str) -> Option<String> {
    if let Some(h) = which("htpasswd") {
        let out = Command::new(h)
            .args(["-nbB", user, password])
            .output()
            .ok()?;
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    let script = "import crypt,sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))";
    let out = Command::new("python3")
        .args(["-W", "ignore", "-c", script, user, password])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && line.contains(":$2")).then_some(line)
}

/// A Docker config directory (`DOCKER_CONFIG`) whose `auths` hold
/// `user:password` for `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    dir
}

/// Runs the `oxport` CLI with `env` added and `RUST_LOG` removed (so that its
/// stderr holds only what the CLI itself reports).
pub fn oxport(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run oxport")
}

/// `oxport export` of the example with `--output output` and `extra` arguments, in
/// `env`: the process output and the response map (empty when none was written).
pub fn export_example(
    output: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (
    std::process::Output,
    std::collections::BTreeMap<String, String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.json");
    let case = example_case();
    let mut args = vec!["export", "--result", case.to_str().unwrap()];
    args.extend([
        "--output",
        output,
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    args.extend(extra);
    let o = oxport(&args, env);
    let response = std::fs::read(&meta)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    (o, response)
}

/// The example, uploaded with the library client to the server at `addr` and
/// exported as `type=image` with `attrs` (a push, with `name` and `push=true`).
pub fn push_example(
    addr: &str,
    attrs: &[(&str, &str)],
) -> Result<std::collections::BTreeMap<String, String>, oxport::client::ClientError> {
    let case = oxport::casefile::load(&example_case()).unwrap();
    let mut req = case.request.clone();
    req.exporter = "image".into();
    for (k, v) in attrs {
        req.attrs.insert(k.to_string(), v.to_string());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = oxport::client::Client::connect(addr).await?;
        client.upload_missing(&case.layer_blobs()).await?;
        client.export(&req, &mut std::io::sink(), &mut |_| {}).await
    })
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &Arc<Mutex<Option<Child>>>, log: &Path) {
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(c) = child.lock().unwrap().as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "process exited ({status}) before listening; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
        assert!(
            started.elapsed() < START_GUARD,
            "nothing listens on {port}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `docker-registry`, killed when dropped.
pub struct Registry {
    bin: PathBuf,
    child: Arc<Mutex<Option<Child>>>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub auth: bool,
}

impl Registry {
    /// Starts a registry; None when the tool is missing outside CI (a recorded skip).
    pub fn start(auth: bool) -> Option<Registry> {
        Registry::start_with(auth, free_port(), "")
    }

    /// A registry on `port` whose `http` section also has `http_extra`
    /// (lines indented by two spaces, e.g. `  host: http://...\n`).
    pub fn start_with(auth: bool, port: u16, http_extra: &str) -> Option<Registry> {
        let bin = which("docker-registry")
            .or_else(|| missing("`docker-registry` is not installed", PURPOSE))?;
        let dir = tempfile::tempdir().unwrap();
        let mut auth_block = String::new();
        if auth {
            let line = htpasswd_line(USER, PASSWORD).or_else(|| {
                missing(
                    "neither `htpasswd` nor Python's crypt can make a bcrypt entry",
                    PURPOSE,
                )
            })?;
            std::fs::write(dir.path().join("htpasswd"), format!("{line}\n")).unwrap();
            auth_block = format!(
                "auth:\n  htpasswd:\n    realm: oxport-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n{auth_block}http:\n  addr: 127.0.0.1:{port}\n{http_extra}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let reg = Registry {
            bin,
            child: Arc::new(Mutex::new(None)),
            port,
            dir,
            auth,
        };
        reg.spawn();
        Some(reg)
    }

    fn spawn(&self) {
        let log = self.dir.path().join("registry.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(logf.try_clone().unwrap()))
            .stderr(Stdio::from(logf))
            .spawn()
            .expect("start docker-registry");
        *self.child.lock().unwrap() = Some(child);
        wait_for_port(self.port, &self.child, &log);
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A function that kills this registry (by its process id).
    pub fn killer(&self) -> impl Fn() + Send + Sync + 'static {
        let child = Arc::clone(&self.child);
        move || {
            if let Some(mut c) = child.lock().unwrap().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Starts the registry again on the same port and storage.
    pub fn restart(&self) {
        (self.killer())();
        self.spawn();
    }

    /// GET with the right credentials when the registry wants them.
    pub fn get(&self, path: &str, accept: &str) -> Response {
        let auth = self.auth.then_some((USER, PASSWORD));
        http_get(self.port, path, accept, auth)
    }

    /// The tags of a repository (empty when it has none).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list"), "application/json");
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "tags/list: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// A manifest by tag or digest: (digest of the bytes, JSON), or None on 404.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(String, serde_json::Value)> {
        let r = self.get(&format!("/v2/{repo}/manifests/{reference}"), ACCEPT);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET manifest {reference}: {}", r.text());
        Some((sha256(&r.body), serde_json::from_slice(&r.body).unwrap()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        (self.killer())();
    }
}

pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// A raw HTTP answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 GET with `Connection: close` (chunked bodies decoded).
pub fn http_get(port: u16, path: &str, accept: &str, basic: Option<(&str, &str)>) -> Response {
    let auth = basic.map(|(u, p)| {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Basic {b}")
    });
    let mut headers = vec![("Accept", accept)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http_request(port, "GET", path, &headers, None)
}

/// One HTTP/1.1 request with `Connection: close`, and `body` (with its
/// length) when given; chunked answers decoded. Independent of oxport's
/// registry client, for setting up what a test then has oxport meet.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to registry");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// A running `oxport serve` on TCP with extra environment, killed when dropped.
pub struct Server {
    child: Arc<Mutex<Option<Child>>>,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `oxport serve --docker-credentials`: the push tests give the server
    /// its credentials through `DOCKER_CONFIG` in `env`.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Server::start_with(&["--docker-credentials"], env)
    }

    /// `oxport serve` with extra flags.
    pub fn start_with(flags: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("server.log");
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            &format!("tcp://127.0.0.1:{port}"),
            "--state",
        ])
        .arg(dir.path().join("state"))
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::from(logf.try_clone().unwrap()))
        .stderr(Stdio::from(logf));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Arc::new(Mutex::new(Some(cmd.spawn().expect("start oxport serve"))));
        wait_for_port(port, &child, &log);
        Server {
            child,
            addr: format!("tcp://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// What the server wrote to its standard output and error so far.
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP proxy in front of the registry. While armed, the first request
/// whose bytes contain `trigger` runs `on_trigger` (which kills the
/// registry) and the connection is cut.
pub struct KillProxy {
    pub port: u16,
    armed: Arc<AtomicBool>,
    pub fired: Arc<AtomicBool>,
    /// Everything clients sent, per connection.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl KillProxy {
    pub fn start(
        upstream: u16,
        trigger: &str,
        on_trigger: impl Fn() + Send + Sync + 'static,
    ) -> KillProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let fired = Arc::new(AtomicBool::new(false));
        let on_trigger: Arc<dyn Fn() + Send + Sync> = Arc::new(on_trigger);
        let trigger = trigger.as_bytes().to_vec();
        let (a, f) = (Arc::clone(&armed), Arc::clone(&fired));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let conn = {
                    let mut l = log.lock().unwrap();
                    l.push(Vec::new());
                    l.len() - 1
                };
                let log = Arc::clone(&log);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    // The registry is down: the client sees the connection close.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Both);
                });
                let (a, f, t, hook) = (
                    Arc::clone(&a),
                    Arc::clone(&f),
                    trigger.clone(),
                    Arc::clone(&on_trigger),
                );
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        log.lock().unwrap()[conn].extend_from_slice(&buf[..n]);
                        if a.load(Ordering::SeqCst)
                            && buf[..n].windows(t.len()).any(|w| w == t.as_slice())
                            && !f.swap(true, Ordering::SeqCst)
                        {
                            hook();
                            let _ = c_read.shutdown(Shutdown::Both);
                            let _ = s_write.shutdown(Shutdown::Both);
                            break;
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(Shutdown::Write);
                });
            }
        });
        KillProxy {
            port,
            armed,
            fired,
            sent,
        }
    }

    /// How often clients sent `pattern`.
    pub fn occurrences(&self, pattern: &str) -> usize {
        let p = pattern.as_bytes();
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.windows(p.len()).filter(|w| *w == p).count())
            .sum()
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}
