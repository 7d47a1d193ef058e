//! Graceful shutdown of a real `oxport serve`: on SIGTERM health turns
//! NOT_SERVING first, in-flight work gets `--shutdown-grace`, and what is
//! still running after it is cancelled so the process exits.

mod grpc_support;

use std::time::Duration;

use grpc_support::corpus::Base;
use grpc_support::{blob, digest_of, ServerProc};
use oxport::proto::exporter_client::ExporterClient;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_health_off_then_cancels_after_the_grace_period() {
    let mut server = ServerProc::unix_with(&["--shutdown-grace", "1s"]);
    let mut client = server.client().await;
    let data = blob(11, 24 << 20);
    let d = digest_of(&data);
    let path = server.dir.path().join("big.blob");
    std::fs::write(&path, &data).unwrap();
    client
        .upload_blob(&d, data.len() as u64, &path)
        .await
        .unwrap();
    let req = Base {
        digest: d,
        size: data.len() as i64,
        diff_id: digest_of(b"any diffID: the blob passes through"),
    }
    .single();

    let channel = client.channel();
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "oxport.exporter.v1.Exporter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    // An export whose client stops reading: it cannot finish by itself.
    let mut held = ExporterClient::new(channel)
        .export(req)
        .await
        .unwrap()
        .into_inner();
    held.message().await.unwrap().expect("a first event");

    let (status, server) = tokio::task::spawn_blocking(move || (server.terminate(), server))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let next = watch.message().await;
    assert!(
        matches!(&next, Ok(Some(m)) if m.status() == ServingStatus::NotServing),
        "health did not turn NOT_SERVING: {next:?}"
    );
    let line = server.wait_for_line("--shutdown-grace", Duration::from_secs(10));
    assert!(line.contains("cancelling"), "{line}");
    // The held download ends without a response.
    let mut done = false;
    while let Ok(Some(ev)) = held.message().await {
        done |= matches!(ev.event, Some(oxport::proto::export_event::Event::Done(_)));
    }
    assert!(!done, "the cancelled export must not report success");
}
