//! A bounded load test: 64 concurrent clients, 50 exports each, against one
//! real `oxport serve`. Every export must succeed and give the same root
//! digest; the server's peak RSS must stay bounded. Latency percentiles are
//! reported, never asserted.

mod grpc_support;

use std::time::{Duration, Instant};

use grpc_support::{fixture, ServerProc};

const CLIENTS: usize = 64;
const EXPORTS_PER_CLIENT: usize = 50;
/// Peak RSS the server may reach under this load.
const MAX_SERVER_RSS_MIB: u64 = 256;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_fifty_exports_each() {
    let server = ServerProc::unix();
    let case = oxport::casefile::load(&fixture("gw_single_art")).expect("load fixture");
    let mut first = server.client().await;
    first
        .upload_missing(&case.layer_blobs())
        .await
        .expect("upload the fixture's layers");
    let want = first
        .export(&case.request, &mut std::io::sink(), &mut |_| {})
        .await
        .expect("a first export")["containerimage.digest"]
        .clone();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let addr = server.addr.clone();
        let req = case.request.clone();
        let want = want.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = oxport::client::Client::connect(&addr).await?;
            let mut latencies = Vec::with_capacity(EXPORTS_PER_CLIENT);
            for _ in 0..EXPORTS_PER_CLIENT {
                let t = Instant::now();
                let resp = client
                    .export(&req, &mut std::io::sink(), &mut |_| {})
                    .await?;
                latencies.push(t.elapsed());
                if resp["containerimage.digest"] != want {
                    return Err(oxport::client::ClientError::Protocol(format!(
                        "digest {} differs from {want}",
                        resp["containerimage.digest"]
                    )));
                }
            }
            Ok::<Vec<Duration>, oxport::client::ClientError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.expect("client task") {
            Ok(l) => latencies.extend(l),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let rss_mib = peak_rss_kib(server.child.id()) / 1024;
    eprintln!(
        "load: {} exports in {:.2}s = {:.0} exports/s, p50 {:.1} ms, p99 {:.1} ms, server peak RSS {} MiB, {} errors",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        rss_mib,
        errors.len()
    );
    assert!(errors.is_empty(), "exports failed under load: {errors:?}");
    assert_eq!(latencies.len(), CLIENTS * EXPORTS_PER_CLIENT);
    assert!(
        rss_mib <= MAX_SERVER_RSS_MIB,
        "server peak RSS {rss_mib} MiB exceeds {MAX_SERVER_RSS_MIB} MiB"
    );
}
