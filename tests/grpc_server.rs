//! `oxport serve` as a real process on real sockets: discovery, the content
//! store's upload protocol, error statuses, and exports.

mod grpc_support;

use std::time::Duration;

use grpc_support::{blob, digest_of, expected, fixture, ServerProc};
use oxport::client::Client;
use oxport::proto::{self, exporter_client::ExporterClient};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
use tonic_types::StatusExt;

async fn assert_serving(client: &Client) {
    let mut health = HealthClient::new(client.channel());
    for service in ["", "oxport.exporter.v1.Exporter"] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check");
        assert_eq!(
            resp.into_inner().status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
}

fn raw(client: &Client) -> ExporterClient<tonic::transport::Channel> {
    ExporterClient::new(client.channel())
}

fn violation_field(s: &tonic::Status) -> String {
    let br = s.get_details_bad_request().expect("BadRequest details");
    br.field_violations[0].field.clone()
}

#[tokio::test]
async fn unix_socket_health_reflection_and_request_ids() {
    let server = ServerProc::unix();
    let client = server.client().await;
    assert_serving(&client).await;

    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(server.socket().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o660);

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut refl = ServerReflectionClient::new(client.channel());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"oxport.exporter.v1.Exporter".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // The request id is in the response metadata and the message.
    let resp = raw(&client)
        .missing_blobs(proto::MissingBlobsRequest { digests: vec![] })
        .await
        .unwrap();
    let header = resp
        .metadata()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!header.is_empty());
    assert_eq!(resp.into_inner().request_id, header);

    // A caller's own id is kept, and errors carry it too.
    let mut req = tonic::Request::new(proto::MissingBlobsRequest {
        digests: vec!["sha256:nope".into()],
    });
    req.metadata_mut()
        .insert("x-request-id", "caller-42".parse().unwrap());
    let err = raw(&client).missing_blobs(req).await.unwrap_err();
    assert_eq!(err.metadata().get("x-request-id").unwrap(), "caller-42");
}

#[tokio::test]
async fn tcp_health() {
    let server = ServerProc::tcp();
    assert!(
        server.addr.starts_with("tcp://127.0.0.1:"),
        "{}",
        server.addr
    );
    let client = server.client().await;
    assert_serving(&client).await;
}

#[tokio::test]
async fn upload_once_then_missing_blobs_dedups() {
    let server = ServerProc::unix();
    let mut client = server.client().await;
    let data = blob(1, 2 * 1024 * 1024 + 333);
    let d = digest_of(&data);
    let other = digest_of(b"never uploaded");
    let file = server.dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();

    let asked = vec![d.clone(), other.clone(), d.clone()];
    assert_eq!(
        client.missing_blobs(&asked).await.unwrap(),
        vec![d.clone(), other.clone()]
    );
    let up = client
        .upload_blob(&d, data.len() as u64, &file)
        .await
        .unwrap();
    assert!(!up.existed);
    assert_eq!(up.sent, data.len() as u64);
    assert_eq!(client.missing_blobs(&asked).await.unwrap(), vec![other]);
    let again = client
        .upload_blob(&d, data.len() as u64, &file)
        .await
        .unwrap();
    assert!(again.existed);
    assert_eq!(again.sent, 0);

    let stored = server
        .state()
        .join("blobs/sha256")
        .join(&d["sha256:".len()..]);
    assert_eq!(std::fs::read(stored).unwrap(), data);
}

#[tokio::test]
async fn upload_resumes_after_a_broken_stream() {
    let server = ServerProc::unix();
    let mut client = server.client().await;
    let data = blob(2, 3 * 1024 * 1024);
    let d = digest_of(&data);
    let half = 1024 * 1024;

    // A writer that sends 1 MiB and then hangs until it is killed.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(proto::WriteBlobRequest {
        r#ref: d.clone(),
        digest: d.clone(),
        size: data.len() as i64,
        offset: 0,
        data: data[..half].to_vec().into(),
    })
    .await
    .unwrap();
    let mut broken = raw(&client);
    let task = tokio::spawn(async move {
        let _keep_open = tx;
        broken
            .write_blob(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st = client.blob_status(&d, &d, data.len() as u64).await.unwrap();
        if st.offset == half as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server never held the first MiB"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();

    let file = server.dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let up = client
        .upload_blob(&d, data.len() as u64, &file)
        .await
        .unwrap();
    assert_eq!(up.resumed_from, half as u64);
    assert_eq!(up.sent, (data.len() - half) as u64);
    assert!(client
        .missing_blobs(std::slice::from_ref(&d))
        .await
        .unwrap()
        .is_empty());
    let stored = server
        .state()
        .join("blobs/sha256")
        .join(&d["sha256:".len()..]);
    assert_eq!(std::fs::read(stored).unwrap(), data);
}

#[tokio::test]
async fn concurrent_uploads_of_one_blob() {
    let server = ServerProc::unix();
    let data = blob(3, 3 * 1024 * 1024 + 17);
    let d = digest_of(&data);
    let file = server.dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();

    let mut a = server.client().await;
    let mut b = Client::connect(&server.addr).await.unwrap();
    let size = data.len() as u64;
    let (ra, rb) = tokio::join!(
        a.upload_blob(&d, size, &file),
        b.upload_blob(&d, size, &file)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Both succeed, and someone wrote the bytes.
    assert!(!(ra.existed && rb.existed), "{ra:?} {rb:?}");
    let stored = server
        .state()
        .join("blobs/sha256")
        .join(&d["sha256:".len()..]);
    assert_eq!(std::fs::read(stored).unwrap(), data);
    let leftovers = std::fs::read_dir(server.state().join("ingest"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "no upload left behind");
}

#[tokio::test]
async fn wrong_digest_is_refused_and_never_visible() {
    let server = ServerProc::unix();
    let mut client = server.client().await;
    let claimed = digest_of(b"what the client promised");
    let sent = b"something else entirely".to_vec();
    let err = raw(&client)
        .write_blob(tokio_stream::iter(vec![proto::WriteBlobRequest {
            r#ref: String::new(),
            digest: claimed.clone(),
            size: sent.len() as i64,
            offset: 0,
            data: sent.into(),
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("digest mismatch"),
        "{}",
        err.message()
    );
    assert_eq!(violation_field(&err), "digest");
    assert_eq!(
        client
            .missing_blobs(std::slice::from_ref(&claimed))
            .await
            .unwrap(),
        vec![claimed.clone()]
    );
    assert!(!server
        .state()
        .join("blobs/sha256")
        .join(&claimed["sha256:".len()..])
        .exists());

    // A malformed digest names the field as well.
    let err = raw(&client)
        .write_blob(tokio_stream::iter(vec![proto::WriteBlobRequest {
            digest: "sha256:ABC".into(),
            ..Default::default()
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violation_field(&err), "digest");
}

#[tokio::test]
async fn bad_requests_get_precise_codes_and_the_server_keeps_serving() {
    let server = ServerProc::unix();
    let mut client = server.client().await;

    let err = client
        .missing_blobs(&["sha256:XYZ".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));

    let err = raw(&client)
        .write_blob(tokio_stream::iter(Vec::<proto::WriteBlobRequest>::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = raw(&client)
        .blob_status(proto::BlobStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A layer digest that is not a digest: refused before anything runs.
    let mut req = oxport::casefile::load(&fixture("single_noatt"))
        .unwrap()
        .request;
    req.result.refs.get_mut("").unwrap()[0].digest = "sha256:short".into();
    let err = raw(&client)
        .export(oxport::wire::request_to_proto(&req))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violation_field(&err), r#"refs[""][0].digest"#);

    // A bad attribute: BuildKit's text, verbatim, naming the attribute.
    let mut req = oxport::casefile::load(&fixture("single_noatt"))
        .unwrap()
        .request;
    req.attrs.insert("oci-artifact".into(), "yes".into());
    let err = raw(&client)
        .export(oxport::wire::request_to_proto(&req))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        r#"non-bool value specified for oci-artifact: strconv.ParseBool: parsing "yes": invalid syntax"#
    );
    assert_eq!(violation_field(&err), "oci-artifact");

    // Blobs that were never uploaded.
    let req = oxport::casefile::load(&fixture("single_noatt"))
        .unwrap()
        .request;
    let err = raw(&client)
        .export(oxport::wire::request_to_proto(&req))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert_eq!(violation_field(&err), r#"refs[""][0].digest"#);

    assert_serving(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_removes_the_socket_and_a_live_socket_is_not_stolen() {
    let mut server = ServerProc::unix();
    let client = server.client().await;
    assert_serving(&client).await;
    // The client stays connected: shutdown must not wait for it forever.
    let socket = server.socket().unwrap();

    let second = std::process::Command::new(grpc_support::BIN)
        .args(["serve", "--listen", &server.addr, "--state"])
        .arg(server.dir.path().join("state2"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already listening"), "{stderr}");
    assert!(socket.exists(), "the live socket must survive");

    // An upload that never finishes holds a request open: shutdown waits
    // for it only for a grace period.
    let d = digest_of(b"never finished");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(proto::WriteBlobRequest {
        digest: d,
        size: 100,
        data: b"part".to_vec().into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut hanging = raw(&client);
    let upload = tokio::spawn(async move {
        let _keep_open = tx;
        hanging
            .write_blob(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = tokio::task::spawn_blocking(move || (server.terminate(), server))
        .await
        .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    assert!(!socket.exists(), "socket file removed on shutdown");
    upload.abort();
    drop(client);
}

/// Uploads a fixture's blobs and exports it; returns (output, response).
async fn export_fixture(
    client: &mut Client,
    name: &str,
) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
    let case = oxport::casefile::load(&fixture(name)).unwrap();
    let uploaded = client.upload_missing(&case.layer_blobs()).await.unwrap();
    assert!(uploaded <= case.layer_blobs().len());
    let mut out = Vec::new();
    let mut events = 0;
    let response = client
        .export(&case.request, &mut out, &mut |_| events += 1)
        .await
        .unwrap();
    (out, response)
}

fn expected_response(name: &str) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(expected(&fixture(name))["response"].clone()).unwrap()
}

#[tokio::test]
async fn export_over_unix_and_tcp_gives_the_fixture_bytes() {
    for server in [ServerProc::unix(), ServerProc::tcp()] {
        for name in ["single_classic_noatt", "gw_single_art"] {
            let mut client = server.client().await;
            let (out, response) = export_fixture(&mut client, name).await;
            assert_eq!(
                response,
                expected_response(name),
                "{name} over {}",
                server.addr
            );
            let want = std::fs::read(fixture(name).with_file_name("expected.tar")).unwrap();
            assert!(out == want, "{name} over {}: tar bytes differ", server.addr);
            // The blobs are there the second time.
            let blobs = oxport::casefile::load(&fixture(name))
                .unwrap()
                .layer_blobs();
            assert_eq!(client.upload_missing(&blobs).await.unwrap(), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_export_stops_it() {
    let server = ServerProc::unix();
    let mut client = server.client().await;
    // One large layer: the output is many chunks, far more than the server
    // buffers, so the export is still running when the client leaves.
    let data = blob(9, 24 * 1024 * 1024);
    let d = digest_of(&data);
    let file = server.dir.path().join("layer");
    std::fs::write(&file, &data).unwrap();
    client
        .upload_blob(&d, data.len() as u64, &file)
        .await
        .unwrap();
    let layer = oxport::model::Layer {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: d.clone(),
        size: data.len() as u64,
        diff_id: digest_of(b"uncompressed"),
        created_by: "big".into(),
        ..Default::default()
    };
    let mut req = oxport::model::ExportRequest {
        exporter: "oci".into(),
        ..Default::default()
    };
    req.attrs.insert("source-date-epoch".into(), "0".into());
    req.result.refs.insert(String::new(), vec![layer]);

    let mut stream = raw(&client)
        .export(oxport::wire::request_to_proto(&req))
        .await
        .unwrap()
        .into_inner();
    let mut chunks = 0;
    while chunks < 2 {
        let ev = stream
            .next()
            .await
            .expect("an event")
            .expect("not an error");
        if let Some(proto::export_event::Event::Chunk(c)) = ev.event {
            assert!(c.len() <= 1024 * 1024);
            chunks += 1;
        }
    }
    drop(stream);

    server.wait_for_line("the client went away", Duration::from_secs(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(server.state().join("tmp"))
        .unwrap()
        .count()
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "scratch left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_serving(&client).await;

    // The same export, read to the end, still works.
    let mut out = Vec::new();
    let response = client.export(&req, &mut out, &mut |_| {}).await.unwrap();
    assert!(response.contains_key("containerimage.digest"));
    assert!(out.len() > data.len());
}
