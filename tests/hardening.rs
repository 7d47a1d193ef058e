//! Attacks on a running `oxport serve` and on the CLI that once crashed,
//! hung or exhausted them: each must now be refused with a clear error while
//! the server keeps answering health checks.
//!
//! Index walks that must not recurse without bound, archive offsets that must
//! not wrap, upload streams that must not hold export slots, requests that
//! must stay within their counts, and blobs that must be verified whatever
//! their digest says. The archives are built here, byte by byte where the
//! attack is in the bytes.

mod grpc_support;
mod harness;
mod support;

use std::time::{Duration, Instant};

use grpc_support::corpus::{self, export_error, upload_base};
use grpc_support::ServerProc;
use oxport::oci::digest_of;
use oxport::proto::{self, exporter_client::ExporterClient};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI layout archive of `index.json` and blobs by name.
fn layout_tar(index_json: &[u8], blobs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index_json);
    for (name, data) in blobs {
        add(name, data);
    }
    b.into_inner().unwrap()
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

fn index_of(manifests: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

fn blob_name(digest: &str) -> String {
    let (alg, hex) = digest.split_once(':').unwrap();
    format!("blobs/{alg}/{hex}")
}

/// `depth` indexes, each listing the next, all correctly hashed.
fn nested_chain(depth: usize) -> Vec<u8> {
    let mut blobs = Vec::new();
    let mut child = index_of(vec![]);
    for _ in 0..depth {
        let d = digest_of(&child);
        let parent = index_of(vec![descriptor(INDEX, &d, child.len())]);
        blobs.push((blob_name(&d), child));
        child = parent;
    }
    let d = digest_of(&child);
    let top = index_of(vec![descriptor(INDEX, &d, child.len())]);
    blobs.push((blob_name(&d), child));
    layout_tar(&top, &blobs)
}

/// An index stored under an upper-case digest (never hashed before) that
/// lists itself.
fn self_listing_index() -> Vec<u8> {
    let fake = format!("sha256:{}", "AB".repeat(32));
    let mut size = 0;
    let mut bytes = Vec::new();
    for _ in 0..4 {
        bytes = index_of(vec![descriptor(INDEX, &fake, size)]);
        size = bytes.len();
    }
    let top = index_of(vec![descriptor(INDEX, &fake, size)]);
    layout_tar(&top, &[(blob_name(&fake), bytes)])
}

/// Sends an archive through the Convert RPC; returns the stream's error.
async fn convert_rpc(
    rpc: &mut ExporterClient<tonic::transport::Channel>,
    input: Vec<u8>,
) -> Option<tonic::Status> {
    let msgs = corpus::convert_requests(&input, 1 << 20, "artifact");
    corpus::stream_error(rpc.convert(tokio_stream::iter(msgs)).await).await
}

/// Runs `f` within a guard far above its normal time: a hang fails the test
/// instead of stalling the suite.
async fn within<T>(what: &str, secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs}s"))
}

async fn assert_serving(server: &ServerProc) {
    let client = server.client().await;
    assert_eq!(
        within("health", 10, corpus::health(client.channel())).await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn index_cycles_and_deep_chains_are_refused_and_the_server_survives() {
    let server = ServerProc::unix();
    let mut rpc = ExporterClient::new(server.client().await.channel());

    let err = within("convert of a self-listing index", 60, async {
        convert_rpc(&mut rpc, self_listing_index()).await
    })
    .await
    .expect("a self-listing index must be refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("digest"), "{}", err.message());
    assert_serving(&server).await;

    let err = within("convert of 1,000 nested indexes", 60, async {
        convert_rpc(&mut rpc, nested_chain(1000)).await
    })
    .await
    .expect("1,000 nested indexes must be refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("levels deep"), "{}", err.message());
    assert_serving(&server).await;

    // A chain just within the limit converts.
    let ok = within("convert of 15 nested indexes", 60, async {
        convert_rpc(&mut rpc, nested_chain(15)).await
    })
    .await;
    assert!(ok.is_none(), "15 nested indexes: {ok:?}");
}

#[test]
fn the_cli_refuses_ten_thousand_nested_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("chain.tar");
    std::fs::write(&src, nested_chain(10_000)).unwrap();
    let out = std::process::Command::new(harness::oxport_bin())
        .args(["convert", "--to", "legacy"])
        .arg(format!("oci-archive:{}", src.display()))
        .arg(format!(
            "oci-archive:{}",
            dir.path().join("out.tar").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("levels deep"), "{stderr}");
    assert!(!dir.path().join("out.tar").exists());
}

/// A PAX record whose size is near 2^64, then a file entry.
fn pax_wrap_archive() -> Vec<u8> {
    let body = "size=18446744073709551000\n";
    let record = format!("{} {body}", body.len() + 3);
    assert_eq!(record.len(), body.len() + 3);
    let mut out = Vec::new();
    let mut header = |name: &str, size: usize, kind: u8| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
    };
    header("pax", record.len(), b'x');
    let mut data = record.as_bytes().to_vec();
    data.resize(512, 0);
    let mut all = out;
    all.extend_from_slice(&data);
    let mut h = tar::Header::new_ustar();
    h.set_path("index.json").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    all.extend_from_slice(h.as_bytes());
    all.extend_from_slice(&[0u8; 1024]);
    all
}

#[tokio::test]
async fn a_pax_size_that_wraps_around_is_refused_and_shutdown_completes() {
    let mut server = ServerProc::unix_with(&["--request-timeout", "5s", "--max-exports", "2"]);
    let mut rpc = ExporterClient::new(server.client().await.channel());
    for _ in 0..2 {
        let err = within("convert of a wrapping PAX size", 30, async {
            convert_rpc(&mut rpc, pax_wrap_archive()).await
        })
        .await
        .expect("a wrapping size must be refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains("do not fit in the archive"),
            "{}",
            err.message()
        );
    }
    assert_serving(&server).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn silent_convert_streams_hold_no_export_slot_and_time_out() {
    let server = ServerProc::unix_with(&["--max-exports", "1", "--stream-idle-timeout", "2s"]);
    let (base, channel) = upload_base(&server).await;
    let mut rpc = ExporterClient::new(channel);
    // Two Convert calls that open their stream and send nothing.
    let mut silent = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<proto::ConvertRequest>(1);
        let mut c = rpc.clone();
        silent.push((
            tx,
            tokio::spawn(async move {
                c.convert(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .err()
            }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = within("an export beside silent conversions", 30, async {
        export_error(&mut rpc, base.single()).await
    })
    .await;
    assert!(err.is_none(), "the export failed: {err:?}");
    eprintln!(
        "export beside two silent conversions: {:?}",
        started.elapsed()
    );
    for (_tx, call) in silent {
        let err = within("a silent conversion", 30, call)
            .await
            .unwrap()
            .expect("a silent stream must be cut off");
        assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
        assert!(
            err.message().contains("--stream-idle-timeout"),
            "{}",
            err.message()
        );
    }
    assert_serving(&server).await;
}

#[tokio::test]
async fn request_counts_are_capped() {
    let server = ServerProc::unix();
    let (base, channel) = upload_base(&server).await;
    let mut rpc = ExporterClient::new(channel);

    // MissingBlobs: past the cap at once, naming the flag.
    let digests: Vec<String> = (0..8193u32).map(|i| digest_of(&i.to_le_bytes())).collect();
    let err = within("MissingBlobs of 8,193 digests", 30, async {
        rpc.missing_blobs(proto::MissingBlobsRequest {
            digests: digests.clone(),
        })
        .await
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("--max-request-digests"));
    // At the cap it answers, every digest missing.
    let resp = within("MissingBlobs of 8,192 digests", 30, async {
        rpc.missing_blobs(proto::MissingBlobsRequest {
            digests: digests[..8192].to_vec(),
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(resp.into_inner().missing.len(), 8192);

    // Export: more layers than the cap, refused before any other work.
    let mut req = base.single();
    let layers = &mut req
        .result
        .as_mut()
        .unwrap()
        .refs
        .get_mut("")
        .unwrap()
        .layers;
    *layers = vec![base.layer(); 8193];
    let err = export_error(&mut rpc, req).await.expect("refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("--max-layers"), "{}", err.message());
    assert_serving(&server).await;
}

#[tokio::test]
async fn an_upload_begun_with_another_size_does_not_poison_the_blob() {
    let server = ServerProc::unix();
    let mut client = server.client().await;
    let data = grpc_support::blob(9, 300_000);
    let digest = digest_of(&data);
    let mut rpc = ExporterClient::new(client.channel());
    // A writer that declares too large a size and stops after every byte.
    let first = proto::WriteBlobRequest {
        r#ref: digest.clone(),
        digest: digest.clone(),
        size: data.len() as i64 + 1000,
        offset: 0,
        data: data.clone().into(),
    };
    let short = rpc.write_blob(tokio_stream::iter(vec![first])).await;
    assert!(short.is_err() || !short.unwrap().into_inner().committed);

    let path = server.dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let up = within("the upload with the right size", 60, async {
        client.upload_blob(&digest, data.len() as u64, &path).await
    })
    .await;
    assert!(up.is_ok(), "the blob stays poisoned: {:?}", up.err());
    let missing = client
        .missing_blobs(std::slice::from_ref(&digest))
        .await
        .unwrap();
    assert!(missing.is_empty(), "the blob was not stored");
}

#[tokio::test]
async fn messages_past_the_default_size_are_refused() {
    let server = ServerProc::unix();
    let (base, channel) = upload_base(&server).await;
    let mut rpc = ExporterClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let req = corpus::meta(base.single(), "frontend.big", &vec![b'x'; 80 << 20]);
    let err = export_error(&mut rpc, req).await.expect("refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert_serving(&server).await;
}

/// A blob whose digest is not lower-case sha256 used to be trusted by its
/// size alone: a swapped layer passed `inspect` with no problem.
#[test]
fn blobs_are_verified_whatever_their_digest_algorithm() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cfg_d = digest_of(config);
    let real = b"the layer the manifest was made for".to_vec();
    let swapped = b"a different layer, of the same size".to_vec();
    assert_eq!(real.len(), swapped.len());
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&real)));
    let upper = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(&real)).to_uppercase()
    );
    for layer_digest in [sha512, upper] {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &cfg_d, config.len()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer_digest, real.len())],
        }))
        .unwrap();
        let m_d = digest_of(&manifest);
        let index = index_of(vec![descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            &m_d,
            manifest.len(),
        )]);
        let tar = layout_tar(
            &index,
            &[
                (blob_name(&cfg_d), config.to_vec()),
                (blob_name(&m_d), manifest),
                (blob_name(&layer_digest), swapped.clone()),
            ],
        );
        let path = dir.path().join("image.tar");
        std::fs::write(&path, tar).unwrap();
        let out = std::process::Command::new(harness::oxport_bin())
            .arg("inspect")
            .arg(format!("oci-archive:{}", path.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{layer_digest}: {stdout}");
        assert!(
            stdout.contains("layers[0]") && !stdout.contains("problems: none"),
            "{layer_digest}: {stdout}"
        );
    }
}

/// Index walks are linear: 80,000 entries used to take most of a minute.
#[test]
fn wide_indexes_are_walked_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let n = 80_000;
    let absent = digest_of(b"no such image");
    let elsewhere = digest_of(b"an image this index does not list");
    // inspect: distinct top-level entries (their blobs are absent: problems).
    let top = index_of(
        (0..n as u32)
            .map(|i| {
                descriptor(
                    "application/vnd.oci.image.manifest.v1+json",
                    &digest_of(&i.to_le_bytes()),
                    10,
                )
            })
            .collect(),
    );
    let path = dir.path().join("wide.tar");
    std::fs::write(&path, layout_tar(&top, &[])).unwrap();
    let run = |args: &[&str]| {
        let mut child = std::process::Command::new(harness::oxport_bin())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let guard = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > guard {
                let _ = child.kill();
                panic!("oxport {args:?} did not finish within 120s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let src = format!("oci-archive:{}", path.display());
    let t = Instant::now();
    assert_eq!(run(&["inspect", &src]).code(), Some(1));
    eprintln!("inspect of {n} entries: {:?}", t.elapsed());

    // convert: one nested index whose entries all name a subject it lacks.
    let mut child = descriptor("application/vnd.oci.image.manifest.v1+json", &absent, 10);
    child["annotations"] = serde_json::json!({"vnd.docker.reference.digest": elsewhere});
    let inner = index_of(vec![child; n]);
    let inner_d = digest_of(&inner);
    let top = index_of(vec![descriptor(INDEX, &inner_d, inner.len())]);
    std::fs::write(&path, layout_tar(&top, &[(blob_name(&inner_d), inner)])).unwrap();
    let out = dir.path().join("out.tar");
    let dst = format!("oci-archive:{}", out.display());
    // The blobs are absent, so the conversion fails, after the walk.
    assert_eq!(
        run(&["convert", "--to", "legacy", &src, &dst]).code(),
        Some(1)
    );
}

/// Silent sockets are closed and cannot keep health checks out; one
/// connection cannot take every request slot with idle upload streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_idle_streams_do_not_starve_others() {
    let server = ServerProc::unix_with(&[
        "--max-connections",
        "16",
        "--max-streams-per-connection",
        "8",
        "--max-concurrent-requests",
        "32",
    ]);
    let socket = server.socket().unwrap();
    drop(server.client().await);
    // 24 sockets that connect and never speak: 16 fill the cap.
    let silent: Vec<std::os::unix::net::UnixStream> = (0..24)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    // Health gets through once the silent ones are given up on (10 s).
    let health = within("health beside 24 silent sockets", 40, async {
        corpus::health(server.client().await.channel()).await
    })
    .await;
    assert_eq!(health, ServingStatus::Serving);
    for mut s in silent.into_iter().take(16) {
        use std::io::Read as _;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || s.read(&mut buf).unwrap_or(0) == 0, "still open");
    }

    // One connection opens 100 uploads that send one message and stall.
    let client = server.client().await;
    let data = grpc_support::blob(3, 4096);
    let mut held = Vec::new();
    for i in 0..100u32 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let digest = digest_of(&[data.as_slice(), &i.to_le_bytes()].concat());
        tx.send(proto::WriteBlobRequest {
            r#ref: digest.clone(),
            digest,
            size: data.len() as i64 + 4,
            offset: 0,
            data: data[..1024].to_vec().into(),
        })
        .await
        .unwrap();
        let mut rpc = ExporterClient::new(client.channel());
        held.push((
            tx,
            tokio::spawn(async move {
                rpc.write_blob(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another connection is still served.
    let mut other = grpc_support::ServerProc::client(&server).await;
    let missing = within("MissingBlobs beside 100 idle uploads", 30, async {
        other.missing_blobs(&[digest_of(b"x")]).await
    })
    .await;
    assert!(missing.is_ok(), "refused: {:?}", missing.err());
    drop(held);
    assert_serving(&server).await;
}
