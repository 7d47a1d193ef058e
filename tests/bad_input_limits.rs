//! The bad-input corpus, continued: inputs past each configurable limit, a
//! blob that never finishes uploading, an upload cancelled by its client,
//! a download abandoned by its client, and overload. Every case runs against
//! a real `oxport serve` started with small limits and asserts the gRPC code,
//! a field violation naming the offending field, a message naming the limit's
//! flag, and that health still answers SERVING afterwards.

mod grpc_support;

use std::time::{Duration, Instant};

use grpc_support::corpus::{
    attrs, check, export_error, health, intoto, meta, upload_base, with_attestation, Base,
};
use grpc_support::{blob, digest_of, ServerProc};
use oxport::proto::{self, exporter_client::ExporterClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const LIMITS: &[&str] = &[
    "--max-message-size",
    "3MiB",
    "--max-blob-size",
    "2MiB",
    "--max-upload-bytes",
    "2MiB",
    "--max-attestations",
    "2",
    "--max-statement-size",
    "64KiB",
    "--max-platforms",
    "1",
    "--max-annotation-size",
    "1KiB",
    "--max-json-depth",
    "16",
    "--request-timeout",
    "4s",
];

fn raw(channel: Channel) -> ExporterClient<Channel> {
    ExporterClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

struct Tally {
    count: usize,
    failures: Vec<String>,
}

impl Tally {
    async fn record(&mut self, channel: &Channel, name: &str, outcome: Result<(), String>) {
        self.count += 1;
        if let Err(e) = outcome {
            self.failures.push(e);
        }
        if health(channel.clone()).await != ServingStatus::Serving {
            self.failures
                .push(format!("{name}: health not SERVING afterwards"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_past_each_limit_are_refused_by_name() {
    let server = ServerProc::unix_with(LIMITS);
    let (b, channel) = upload_base(&server).await;
    let mut rpc = raw(channel.clone());
    assert!(
        export_error(&mut rpc, b.single()).await.is_none(),
        "the base request must export under the small limits"
    );
    let mut t = Tally {
        count: 0,
        failures: Vec::new(),
    };
    let re = Code::ResourceExhausted;
    let att = |a| with_attestation(b.single(), "linux/amd64", a);
    let bundle = |content: Vec<u8>| proto::Attestation {
        kind: proto::attestation::Kind::Bundle as i32,
        path: "/bundle".into(),
        bundle: vec![proto::BundleFile {
            name: "a.json".into(),
            content,
        }],
        ..Default::default()
    };
    let mut three = b.single();
    for _ in 0..3 {
        three = with_attestation(three, "linux/amd64", intoto("https://example.com/p", b"{}"));
    }
    let big_predicate = format!("{{\"blob\":\"{}\"}}", "a".repeat(100 << 10));
    let big_bundle = format!(
        "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicateType\":\"p\",\"subject\":[],\"predicate\":{{\"x\":\"{}\"}}}}",
        "b".repeat(100 << 10)
    );
    let big_value = "v".repeat(2 << 10);
    let mut big_attr = b.single();
    attrs(&mut big_attr, &[("annotation.big", big_value.as_str())]);
    let deep_config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"x\":{}}}",
        nested(20)
    );
    let cases: Vec<(&str, proto::ExportRequest, Code, &str, &str)> = vec![
        ("platforms", b.map(), re, "refs", "--max-platforms"),
        (
            "attestations per platform",
            three,
            re,
            "attestations[\"linux/amd64\"]",
            "--max-attestations",
        ),
        (
            "statement size",
            att(intoto("https://example.com/p", big_predicate.as_bytes())),
            re,
            "attestations[\"linux/amd64\"][0]",
            "--max-statement-size",
        ),
        (
            "bundle statement size",
            att(bundle(big_bundle.into_bytes())),
            re,
            "attestations[\"linux/amd64\"][0].bundle",
            "--max-statement-size",
        ),
        (
            "annotation attribute size",
            big_attr,
            re,
            "annotation.big",
            "--max-annotation-size",
        ),
        (
            "annotation metadata size",
            meta(b.single(), "annotation.m", big_value.as_bytes()),
            re,
            "annotation.m",
            "--max-annotation-size",
        ),
        (
            "config nesting",
            meta(b.single(), "containerimage.config", deep_config.as_bytes()),
            re,
            "metadata[\"containerimage.config\"]",
            "--max-json-depth",
        ),
        (
            "predicate nesting",
            att(intoto("https://example.com/p", nested(20).as_bytes())),
            re,
            "attestations[\"linux/amd64\"][0].content",
            "--max-json-depth",
        ),
        (
            "export message size",
            meta(b.single(), "frontend.big", &vec![b'x'; 4 << 20]),
            re,
            "request",
            "--max-message-size",
        ),
    ];
    for (name, req, code, field, text) in cases {
        let status = export_error(&mut rpc, req).await;
        t.record(&channel, name, check(name, status, code, field, text))
            .await;
    }

    // ResolveOptions checks annotation sizes too.
    let status = rpc
        .resolve_options(proto::ResolveOptionsRequest {
            exporter: "oci".into(),
            attrs: [("annotation.big".to_string(), big_value.clone())].into(),
            compatibility_version: 0,
        })
        .await
        .err();
    let name = "resolve-options annotation size";
    t.record(
        &channel,
        name,
        check(name, status, re, "annotation.big", "--max-annotation-size"),
    )
    .await;

    // The content API.
    let d = digest_of(b"whatever");
    let write = |size: i64, data: Vec<u8>| proto::WriteBlobRequest {
        digest: d.clone(),
        size,
        data: data.into(),
        ..Default::default()
    };
    let uploads: Vec<(&str, Vec<proto::WriteBlobRequest>, &str, &str)> = vec![
        (
            "blob size",
            vec![write(3 << 20, Vec::new())],
            "size",
            "--max-blob-size",
        ),
        (
            "upload message size",
            vec![write(1 << 20, vec![0; 4 << 20])],
            "data",
            "--max-message-size",
        ),
    ];
    for (name, msgs, field, text) in uploads {
        let status = rpc.write_blob(tokio_stream::iter(msgs)).await.err();
        t.record(&channel, name, check(name, status, re, field, text))
            .await;
    }
    let chunk = |to: &str| proto::ConvertRequest {
        to: to.into(),
        chunk: vec![0; 1 << 20].into(),
    };
    let name = "convert input bytes";
    let status = match rpc
        .convert(tokio_stream::iter(vec![
            chunk("artifact"),
            chunk(""),
            chunk(""),
        ]))
        .await
    {
        Err(s) => Some(s),
        Ok(r) => r.into_inner().message().await.err(),
    };
    t.record(
        &channel,
        name,
        check(name, status, re, "data", "--max-upload-bytes"),
    )
    .await;

    // A blob that never finishes: the stream stays open and silent.
    let data = blob(3, 1000);
    let d = digest_of(&data);
    let (tx, rx) = mpsc::channel(4);
    tx.send(proto::WriteBlobRequest {
        digest: d.clone(),
        size: 1000,
        data: data[..100].to_vec().into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let status = rpc.write_blob(ReceiverStream::new(rx)).await.err();
    drop(tx);
    let name = "upload past the deadline";
    let held = rpc
        .blob_status(proto::BlobStatusRequest {
            r#ref: String::new(),
            digest: d.clone(),
            size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut outcome = check(
        name,
        status,
        Code::DeadlineExceeded,
        "data",
        "--request-timeout",
    );
    if outcome.is_ok() && (held.offset != 100 || held.committed) {
        outcome = Err(format!(
            "{name}: the server holds {} bytes (committed {}), expected 100 kept for a resume",
            held.offset, held.committed
        ));
    }
    t.record(&channel, name, outcome).await;

    eprintln!(
        "bad input (limits): {} passed, {} failed",
        t.count - t.failures.len(),
        t.failures.len()
    );
    assert!(
        t.failures.is_empty(),
        "limit cases that failed:\n{}",
        t.failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_upload_is_kept_for_a_resume() {
    let server = ServerProc::unix();
    let client = server.client().await;
    let channel = client.channel();
    let mut rpc = raw(channel.clone());
    let data = blob(5, 3 << 20);
    let d = digest_of(&data);
    let (tx, rx) = mpsc::channel(4);
    tx.send(proto::WriteBlobRequest {
        digest: d.clone(),
        size: data.len() as i64,
        data: data[..1 << 20].to_vec().into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut call = {
        let mut rpc = rpc.clone();
        tokio::spawn(async move { rpc.write_blob(ReceiverStream::new(rx)).await })
    };
    // Wait until the server holds the first chunk, then cancel the call.
    let guard = Instant::now() + Duration::from_secs(60);
    loop {
        let st = rpc
            .blob_status(proto::BlobStatusRequest {
                r#ref: String::new(),
                digest: d.clone(),
                size: 0,
            })
            .await
            .unwrap()
            .into_inner();
        if st.offset == 1 << 20 {
            break;
        }
        assert!(Instant::now() < guard, "the first chunk never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    assert!((&mut call).await.unwrap_err().is_cancelled());
    let line = server.wait_for_line("upload ended short", Duration::from_secs(30));
    drop(tx);
    assert!(line.contains(&d), "{line}");
    let held = rpc
        .blob_status(proto::BlobStatusRequest {
            r#ref: String::new(),
            digest: d.clone(),
            size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (held.offset, held.committed),
        (1 << 20, false),
        "a cancelled upload keeps its bytes for a resume and does not commit"
    );
    assert_eq!(
        health(channel.clone()).await,
        ServingStatus::Serving,
        "health after a cancelled upload"
    );
    let missing = rpc
        .missing_blobs(proto::MissingBlobsRequest {
            digests: vec![d.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .missing;
    assert_eq!(
        missing,
        vec![d.clone()],
        "a cancelled upload must not commit"
    );

    // The reference client resumes from the bytes held.
    let path = server.dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let mut client = server.client().await;
    let up = client
        .upload_blob(&d, data.len() as u64, &path)
        .await
        .unwrap();
    assert_eq!(up.resumed_from, 1 << 20);
    assert!(client
        .missing_blobs(std::slice::from_ref(&d))
        .await
        .unwrap()
        .is_empty());
}

/// A layer large enough that its export cannot fit in the server's buffers.
async fn big_layer(server: &ServerProc) -> proto::ExportRequest {
    let data = blob(9, 24 << 20);
    let d = digest_of(&data);
    let path = server.dir.path().join("big.blob");
    std::fs::write(&path, &data).unwrap();
    let mut client = server.client().await;
    client
        .upload_blob(&d, data.len() as u64, &path)
        .await
        .expect("upload the big layer");
    let base = Base {
        digest: d,
        size: data.len() as i64,
        diff_id: digest_of(b"any diffID: the blob passes through"),
    };
    base.single()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_at_once_and_an_abandoned_download_frees_its_slot() {
    let server = ServerProc::unix_with(&[
        "--max-concurrent-requests",
        "2",
        "--max-exports",
        "1",
        "--export-queue",
        "0",
    ]);
    let req = big_layer(&server).await;
    let channel = server.client().await.channel();
    let mut rpc = raw(channel.clone());

    // A download that reads one message and then stops reading holds the
    // only export slot and one request slot.
    let mut held = rpc.export(req.clone()).await.unwrap().into_inner();
    held.message().await.unwrap().expect("a first event");

    let mut t = Tally {
        count: 0,
        failures: Vec::new(),
    };
    let name = "export queue full";
    let status = export_error(&mut rpc, req.clone()).await;
    t.record(
        &channel,
        name,
        check(
            name,
            status,
            Code::ResourceExhausted,
            "exporter",
            "--export-queue",
        ),
    )
    .await;

    // An upload that stays open takes the second request slot. The refused
    // export above may still hold its slot for a moment, so an upload that
    // is itself refused is opened again.
    let d = digest_of(b"0123456789");
    let open = |rpc: &ExporterClient<Channel>| {
        let (tx, rx) = mpsc::channel(1);
        let first = proto::WriteBlobRequest {
            digest: d.clone(),
            size: 10,
            data: b"01234".to_vec().into(),
            ..Default::default()
        };
        let mut rpc = rpc.clone();
        let task = tokio::spawn(async move {
            tx.send(first).await.unwrap();
            let r = rpc.write_blob(ReceiverStream::new(rx)).await;
            (tx, r)
        });
        task
    };
    let mut open_upload = open(&rpc);
    let name = "requests over --max-concurrent-requests";
    let guard = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if open_upload.is_finished() {
            open_upload = open(&rpc);
        }
        // The upload may not have reached the server yet: ask until it has.
        match rpc
            .missing_blobs(proto::MissingBlobsRequest {
                digests: vec![d.clone()],
            })
            .await
        {
            Err(s) => break Some(s),
            Ok(_) if Instant::now() < guard => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(_) => break None,
        }
    };
    let outcome = match status {
        Some(s) if s.code() == Code::ResourceExhausted => {
            if s.message().contains("--max-concurrent-requests") {
                Ok(())
            } else {
                Err(format!("{name}: message {:?} lacks the flag", s.message()))
            }
        }
        other => Err(format!(
            "{name}: expected RESOURCE_EXHAUSTED, got {other:?}"
        )),
    };
    t.record(&channel, name, outcome).await;

    // Abandon the download: the export stops and frees its slots.
    drop(held);
    open_upload.abort();
    let line = server.wait_for_line("the client went away", Duration::from_secs(60));
    assert!(line.contains("export"), "{line}");
    let name = "export after an abandoned download";
    let guard = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        match export_error(&mut rpc, req.clone()).await {
            None => break Ok(()),
            // The upload's slot goes when the server notices the cancel.
            Some(s) if s.code() == Code::ResourceExhausted && Instant::now() < guard => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Some(s) => break Err(format!("{name}: {s:?}")),
        }
    };
    t.record(&channel, name, outcome).await;
    eprintln!(
        "bad input (overload): {} passed, {} failed",
        t.count - t.failures.len(),
        t.failures.len()
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
}
