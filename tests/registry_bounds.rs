//! Pushes and reads that a misbehaving registry cannot make endless: an
//! upload `Range` that never advances, upload sessions lost on every PUT
//! (both from a hostile test server, since a real registry cannot be made to
//! do either on purpose), and a response body that stalls halfway (a fault
//! proxy in front of the real `docker-registry`). Each must end within the
//! retry budget; every wait here is bounded.

mod registry_support;
mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxport::registry::{
    BlobPush, ClientOptions, CredentialSource, FileBlob, RegistryClient, RegistryError, RetryPolicy,
};
use registry_support::faults::{Fault, FaultProxy, Rule};
use registry_support::hostile::{Hostile, Reply, Req};
use registry_support::{Registry, BIN};

/// How long a push may run before the test calls it endless.
const GUARD: Duration = Duration::from_secs(20);
const ATTEMPTS: u32 = 4;

fn client(host: &str) -> RegistryClient {
    RegistryClient::new(
        host,
        ClientOptions {
            monolithic_max: 1 << 20,
            chunk_size: 1 << 20,
            credentials: CredentialSource::Anonymous,
            retry: RetryPolicy {
                attempts: ATTEMPTS,
                base_delay: Duration::from_millis(10),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// Pushes `size` bytes as one blob, giving up after [`GUARD`]; None when
/// the push was still going then.
fn bounded_push(host: &str, size: usize) -> Option<Result<BlobPush, RegistryError>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let desc = oxport::oci::Descriptor::of("application/octet-stream", &data);
    let client = client(host);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let push = client.push_blob(
            "hostile",
            &desc,
            Arc::new(FileBlob(path)),
            None,
            Arc::new(|_| {}),
        );
        tokio::time::timeout(GUARD, push).await.ok()
    })
}

/// The part of an upload answer every hostile registry here shares.
fn upload_start(r: &Req) -> Option<Reply> {
    match r.method.as_str() {
        "HEAD" => Some(Reply::new(404)),
        "POST" => Some(
            Reply::new(202)
                .header("Location", "/v2/hostile/blobs/uploads/s1")
                .header("Range", "0-0"),
        ),
        _ => None,
    }
}

#[test]
fn a_range_that_never_advances_ends_the_push_within_the_budget() {
    // Every PATCH and status query answers `Range: 0-1023`, whatever was sent.
    let reg = Hostile::start(|r| {
        upload_start(r).unwrap_or_else(|| match r.method.as_str() {
            "PATCH" | "GET" => Reply::new(if r.method == "GET" { 204 } else { 202 })
                .header("Location", "/v2/hostile/blobs/uploads/s1")
                .header("Range", "0-1023"),
            _ => Reply::new(201),
        })
    });
    let started = Instant::now();
    let size = 4 << 20;
    let outcome = bounded_push(&reg.host(), size);
    let sent = reg.bytes_in();
    eprintln!(
        "range stuck at 1024: {} PATCHes, {sent} bytes received in {:?}",
        reg.count("PATCH", "/uploads/"),
        started.elapsed()
    );
    let Some(result) = outcome else {
        panic!("the push was still going after {GUARD:?}; the registry received {sent} bytes for a {size}-byte blob");
    };
    let err = result.expect_err("a registry that keeps 1024 bytes cannot take the blob");
    assert!(
        matches!(err, RegistryError::Unavailable { attempts, .. } if attempts == ATTEMPTS),
        "{err}"
    );
    assert!(err.to_string().contains("kept 1024"), "{err}");
    // At most one chunk per attempt of the budget.
    assert!(sent <= ATTEMPTS as u64 * (1 << 20), "{sent} bytes sent");
}

#[test]
fn upload_sessions_lost_on_every_put_end_the_push_within_the_budget() {
    // Every upload PUT answers 404: the session is gone.
    let reg = Hostile::start(|r| {
        upload_start(r).unwrap_or_else(|| match r.method.as_str() {
            "PUT" => Reply::new(404),
            _ => Reply::new(400),
        })
    });
    let outcome = bounded_push(&reg.host(), 4096);
    let sessions = reg.count("POST", "/blobs/uploads/");
    eprintln!("upload PUTs answered 404: {sessions} sessions started");
    let Some(result) = outcome else {
        panic!("the push was still going after {GUARD:?} with {sessions} sessions started");
    };
    let err = result.expect_err("no session ever commits");
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(sessions, ATTEMPTS as usize, "one session per attempt");
}

/// Runs `oxport` with `env`, killing it after [`GUARD`]; None when it was
/// still running then.
fn bounded_oxport(args: &[&str], env: &[(&str, &str)]) -> Option<std::process::Output> {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("run oxport");
    let pid = child.id() as libc::pid_t;
    // Output is read as it comes (a full pipe would block the child).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(GUARD) {
        Ok(out) => Some(out.unwrap()),
        Err(_) => {
            // SAFETY: kill(2) on the child we started, which is not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv();
            None
        }
    }
}

/// Pushes the example to `demo:v1` on `reg` directly (no fault in between).
fn push_demo(reg: &Registry) {
    let case = registry_support::example_case();
    let name = format!("{}/demo:v1", reg.host());
    let out = bounded_oxport(
        &[
            "export",
            "--result",
            case.to_str().unwrap(),
            "--output",
            &format!("type=image,name={name},push=true"),
        ],
        &[],
    )
    .expect("the push ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_manifest_body_that_stalls_halfway_is_read_again() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    push_demo(&reg);

    // The first answer for the tag stops halfway and stays silent for longer
    // than the guard; the second is whole.
    let stall = Fault::StallBody(GUARD + Duration::from_secs(10));
    let rule = Rule {
        method: "GET",
        path: "/v2/demo/manifests/v1".into(),
        skip: 0,
        times: 1,
        fault: stall,
    };
    let proxy = FaultProxy::start(reg.port, vec![rule]);
    let started = Instant::now();
    let out = bounded_oxport(
        &[
            "inspect",
            "--format",
            "json",
            &format!("docker://{}/demo:v1", proxy.host()),
        ],
        &[
            ("OXPORT_REGISTRY_IDLE_TIMEOUT_MS", "500"),
            ("OXPORT_REGISTRY_ATTEMPTS", "3"),
            ("OXPORT_REGISTRY_RETRY_DELAY_MS", "10"),
        ],
    );
    let fired = proxy.fired();
    let Some(out) = out else {
        panic!("inspect hung on the stalled body for {GUARD:?} (faults: {fired:?})");
    };
    eprintln!("stalled body: inspect ended in {:?}", started.elapsed());
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64"),
        "{text}"
    );
}

#[test]
fn a_statement_longer_than_announced_is_cut_off_at_its_size() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    push_demo(&reg);
    let (_, index) = reg.manifest("demo", "v1").unwrap();
    let attestation = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .expect("an attestation manifest")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, m) = reg.manifest("demo", &attestation).unwrap();
    let statement = m["layers"][0]["digest"].as_str().unwrap().to_string();

    // The statement's size (HEAD) is true, and its first download (the
    // digest check) is whole; the second one, read into memory, goes on with
    // 256 MiB of JSON whitespace.
    let padding = 256u64 << 20;
    let rule = Rule {
        method: "GET",
        path: format!("/v2/demo/blobs/{statement}"),
        skip: 1,
        times: usize::MAX,
        fault: Fault::Oversize(padding),
    };
    let proxy = FaultProxy::start(reg.port, vec![rule]);
    let out = bounded_oxport(
        &[
            "inspect",
            "--format",
            "json",
            &format!("docker://{}/demo:v1", proxy.host()),
        ],
        &[],
    );
    let taken = proxy.padding_sent();
    eprintln!("oversized statement: inspect took {taken} bytes of padding");
    let Some(out) = out else {
        panic!("inspect ran for {GUARD:?} on an oversized statement ({taken} bytes taken)");
    };
    assert!(!proxy.fired().is_empty(), "the fault was never injected");
    assert!(
        taken < 32 << 20,
        "inspect read {taken} bytes past the announced size of {statement}"
    );
    // The read stops at the announced size: either the statement checks out
    // (its first bytes are whole) or the problem names it.
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&statement), "{report}");
}

/// Puts `n` signature-like manifests naming `subject` into `repo`, and a
/// fallback tag listing them after what it listed already; their digests.
fn attach_signatures(reg: &Registry, repo: &str, subject: &str, n: usize) -> Vec<String> {
    use futures_util::StreamExt as _;
    use oxport::oci::{Descriptor, MT_OCI_EMPTY, MT_OCI_INDEX, MT_OCI_MANIFEST};
    let (_, subject_json) = reg.manifest(repo, subject).unwrap();
    let subject_size = serde_json::to_vec_pretty(&subject_json).unwrap().len();
    let subject_desc = serde_json::json!({
        "mediaType": MT_OCI_MANIFEST, "digest": subject, "size": subject_size,
    });
    let empty = Descriptor::of(MT_OCI_EMPTY, b"{}");
    let empty = serde_json::json!({"mediaType": MT_OCI_EMPTY, "digest": empty.digest, "size": 2});
    let manifests: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "artifactType": "application/vnd.example.signature",
                "config": empty,
                "layers": [empty],
                "subject": subject_desc,
                "annotations": {"n": i.to_string()},
            }))
            .unwrap()
        })
        .collect();
    let client = client(&reg.host());
    let tag = subject.replace(':', "-");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let puts = manifests.iter().map(|m| {
            let client = client.clone();
            async move {
                client
                    .put_manifest(
                        repo,
                        &oxport::oci::digest_of(m),
                        MT_OCI_MANIFEST,
                        m.clone().into(),
                        None,
                    )
                    .await
                    .unwrap()
            }
        });
        futures_util::stream::iter(puts)
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let existing = client.get_manifest(repo, &tag).await.unwrap().unwrap();
        let mut index: serde_json::Value = serde_json::from_slice(&existing.bytes).unwrap();
        let list = index["manifests"].as_array_mut().unwrap();
        for m in &manifests {
            list.push(serde_json::json!({
                "mediaType": MT_OCI_MANIFEST,
                "digest": oxport::oci::digest_of(m),
                "size": m.len(),
                "artifactType": "application/vnd.example.signature",
            }));
        }
        let bytes = serde_json::to_vec(&index).unwrap();
        client
            .put_manifest(repo, &tag, MT_OCI_INDEX, bytes.into(), None)
            .await
            .unwrap();
    });
    manifests
        .iter()
        .map(|m| oxport::oci::digest_of(m))
        .collect()
}

#[test]
fn thousands_of_referrers_cost_a_bounded_number_of_requests() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let case = registry_support::example_case();
    let out = bounded_oxport(
        &[
            "export",
            "--result",
            case.to_str().unwrap(),
            "--output",
            &format!("type=image,name={}/demo:v1,push=true", reg.host()),
        ],
        &[],
    )
    .expect("the push ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, index) = reg.manifest("demo", "v1").unwrap();
    let subject = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let n = 600;
    let signatures = attach_signatures(&reg, "demo", &subject, n);

    // Records what inspect sends; the trigger never occurs.
    let proxy = registry_support::KillProxy::start(reg.port, "\u{0}never\u{0}", || {});
    let out = bounded_oxport(
        &[
            "inspect",
            "--format",
            "json",
            &format!("docker://127.0.0.1:{}/demo:v1", proxy.port),
        ],
        &[],
    );
    let requests = proxy.occurrences(" HTTP/1.1\r\n");
    eprintln!("{n} signature referrers: inspect sent {requests} requests");
    let out = out.expect("inspect ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = report["roots"][0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["digest"] == subject.as_str())
        .unwrap_or_else(|| panic!("no image {subject} in {report}"));
    let listed: Vec<&str> = image["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), n + 1, "every referrer is listed");
    assert!(signatures.iter().all(|s| listed.contains(&s.as_str())));
    assert!(requests < 300, "{requests} requests for {n} referrers");
}
