//! What operators rely on, against a real `oxport serve` process:
//! `/metrics` during and after an export, JSON logs carrying the request id,
//! `oxport health`, and socket activation (a listening socket passed through
//! `LISTEN_FDS`/`LISTEN_PID`, as systemd does).

mod grpc_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use grpc_support::BIN;
use oxport::client::Client;
use oxport::model::{BuildResult, ExportRequest, Layer};
use oxport::proto::{export_event::Event, exporter_client::ExporterClient};
use sha2::{Digest, Sha256};

/// `oxport serve` with its stderr lines forwarded to a channel.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Served {
    fn start(cmd: &mut Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oxport serve");
        let lines = grpc_support::forward_lines(child.stderr.take().unwrap());
        Served { child, lines }
    }

    fn wait_for(&self, text: &str) -> String {
        grpc_support::wait_for_line(&self.lines, text, Duration::from_secs(60))
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET http://addr/path with a bare HTTP/1.1 request: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of one sample, by its full series name.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Scrapes until `done` holds (bounded), returning the last scrape.
fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..600 {
        let (status, body) = http_get(addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        if done(&body) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("/metrics never showed {what}");
}

/// A gzip layer of `size` incompressible bytes, written to `path`.
fn big_layer(path: &Path, size: usize) -> Layer {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut tar = oxport::sink::tar::TarWriter::new(Vec::new());
    tar.file_bytes("data.bin", 0o644, &data).unwrap();
    let tar = tar.finish().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(path, &gz).unwrap();
    Layer {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&gz))),
        size: gz.len() as u64,
        diff_id: format!("sha256:{}", hex::encode(Sha256::digest(&tar))),
        annotations: BTreeMap::new(),
        created_by: "big layer".into(),
        created: String::new(),
    }
}

async fn connect(addr: &str) -> Client {
    for _ in 0..300 {
        if let Ok(c) = Client::connect(addr).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_an_export_and_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("oxport.sock");
    let addr = format!("unix://{}", sock.display());
    let server = Served::start(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &addr,
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json", "--state"])
            .arg(dir.path().join("state"))
            .env("RUST_LOG", "info"),
    );
    let line = server.wait_for("metrics on http://");
    let metrics = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let (status, _) = http_get(&metrics, "/nothing");
    assert!(status.contains("404"), "{status}");

    // 32 MiB of output cannot fit in the server's channel and the HTTP/2
    // windows, so an export whose stream is not read stays in flight.
    let blob = dir.path().join("layer.tar.gz");
    let layer = big_layer(&blob, 32 << 20);
    let mut client = connect(&addr).await;
    let uploaded = client
        .upload_missing(&[(layer.digest.clone(), layer.size, blob.clone())])
        .await
        .unwrap();
    assert_eq!(uploaded, 1);
    let req = ExportRequest {
        exporter: "oci".into(),
        attrs: BTreeMap::new(),
        compatibility_version: 0,
        result: BuildResult {
            refs: BTreeMap::from([(String::new(), vec![layer.clone()])]),
            ..BuildResult::default()
        },
    };
    let mut rpc = ExporterClient::new(client.channel()).max_decoding_message_size(8 << 20);
    let resp = rpc
        .export(oxport::wire::request_to_proto(&req))
        .await
        .unwrap();
    let request_id = resp
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut stream = resp.into_inner();

    let during = scrape_until(&metrics, "an export in flight", |t| {
        sample(t, "oxport_exports_in_flight") == 1.0
    });
    assert!(sample(&during, "oxport_requests_in_flight") >= 1.0);
    assert_eq!(
        sample(&during, "oxport_blob_bytes_received_total"),
        layer.size as f64
    );
    assert_eq!(
        sample(
            &during,
            "oxport_exports_total{exporter=\"oci\",outcome=\"success\"}"
        ),
        0.0
    );
    assert_eq!(sample(&during, "oxport_export_duration_seconds_count"), 0.0);

    let mut out_bytes = 0u64;
    let mut done = None;
    while let Some(ev) = stream.message().await.unwrap() {
        assert_eq!(ev.request_id, request_id);
        match ev.event {
            Some(Event::Chunk(c)) => out_bytes += c.len() as u64,
            Some(Event::Done(d)) => done = Some(d.response),
            _ => {}
        }
    }
    let response = done.expect("a response map");
    assert!(response.contains_key("containerimage.digest"));
    assert!(out_bytes > layer.size);

    let after = scrape_until(&metrics, "the export counted", |t| {
        sample(
            t,
            "oxport_exports_total{exporter=\"oci\",outcome=\"success\"}",
        ) == 1.0
    });
    assert_eq!(sample(&after, "oxport_exports_in_flight"), 0.0);
    assert_eq!(sample(&after, "oxport_export_duration_seconds_count"), 1.0);
    assert_eq!(
        sample(&after, "oxport_export_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(
        sample(&after, "oxport_export_bytes_sent_total"),
        out_bytes as f64
    );
    assert_eq!(sample(&after, "oxport_blobs_deduplicated_total"), 0.0);

    // Asking again about a stored blob is a deduplicated upload.
    let missing = client
        .missing_blobs(std::slice::from_ref(&layer.digest))
        .await
        .unwrap();
    assert!(missing.is_empty());
    let again = scrape_until(&metrics, "a deduplicated blob", |t| {
        sample(t, "oxport_blobs_deduplicated_total") == 1.0
    });
    assert_eq!(sample(&again, "oxport_registry_retries_total"), 0.0);

    // The export's log line is JSON and names the request id in its span.
    let line = server.wait_for("export done");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["fields"]["message"], "export done");
    assert_eq!(v["span"]["id"], request_id.as_str(), "{line}");
    assert_eq!(v["level"], "INFO");
}

/// Runs `oxport health`; (success, stdout).
fn health(addr: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["health", "--addr", addr, "--timeout", "10"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn health_reports_serving_and_fails_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix://{}", dir.path().join("none.sock").display());
    let (ok, _) = health(&addr, &[]);
    assert!(!ok, "health succeeded with no server");

    let server = grpc_support::ServerProc::unix();
    let mut result = (false, String::new());
    for _ in 0..300 {
        result = health(&server.addr, &[]);
        if result.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(result, (true, "SERVING".to_string()));
    assert_eq!(
        health(&server.addr, &["--service", ""]),
        (true, "SERVING".into())
    );
    let (ok, _) = health(&server.addr, &["--service", "no.such.Service"]);
    assert!(!ok);
}

/// Starts `oxport serve` with `listener` passed as fd 3 the way systemd does:
/// the shell moves it from stdin to fd 3 and sets LISTEN_PID to its own pid,
/// which `exec` hands on to oxport.
fn serve_activated(listener: OwnedFd, state: &Path, listen_flag: &str) -> Served {
    Served::start(
        Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --listen "$1" --state "$2""#)
            .arg(BIN)
            .arg(listen_flag)
            .arg(state)
            .env("RUST_LOG", "info")
            .stdin(Stdio::from(listener)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_the_inherited_socket_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock: PathBuf = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let unused = dir.path().join("unused/never.sock");
    let mut server = serve_activated(
        OwnedFd::from(listener),
        &dir.path().join("state"),
        &format!("unix://{}", unused.display()),
    );
    server.wait_for("passed by the service manager");
    let addr = format!("unix://{}", sock.display());

    // A full export over the inherited socket.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-platform/case.json");
    let loaded = oxport::casefile::load(&case).unwrap();
    let mut client = connect(&addr).await;
    client.upload_missing(&loaded.layer_blobs()).await.unwrap();
    let mut out = Vec::new();
    let response = client
        .export(&loaded.request, &mut out, &mut |_| {})
        .await
        .unwrap();
    assert!(response["containerimage.digest"].starts_with("sha256:"));
    assert_eq!(&out[257..262], b"ustar");
    assert_eq!(health(&addr, &[]), (true, "SERVING".into()));
    assert!(!unused.exists(), "--listen was bound despite activation");

    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // The socket file belongs to the service manager: still there.
    assert!(sock.exists(), "the server removed the inherited socket");
}
