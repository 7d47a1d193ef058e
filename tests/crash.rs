//! Crash consistency of the content store: a real server is killed with
//! SIGKILL in the middle of an upload, restarted on the same state directory,
//! and must then hold no blob whose bytes mismatch its name, report the blob
//! as missing, accept the upload again (resuming where it can) and export.

mod grpc_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpc_support::{blob, connect_unix, digest_of, BIN};

fn start(state: &Path, socket: &Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen"])
        .arg(format!("unix://{}", socket.display()))
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start oxport serve")
}

/// Every committed blob hashes to its name.
fn check_store(state: &Path) -> usize {
    let dir = state.join("blobs/sha256");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            digest_of(&bytes),
            format!("sha256:{name}"),
            "blob {name} does not hash to its name after a crash"
        );
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_upload_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let (state, socket) = (dir.path().join("state"), dir.path().join("s.sock"));
    let data = blob(7, 256 << 20);
    let digest = digest_of(&data);
    let path = dir.path().join("layer.bin");
    std::fs::write(&path, &data).unwrap();

    let mut server = start(&state, &socket);
    let mut client = connect_unix(&socket).await;
    let upload = {
        let (digest, path) = (digest.clone(), path.clone());
        tokio::spawn(async move { client.upload_blob(&digest, data.len() as u64, &path).await })
    };
    // Kill once part of the blob has arrived.
    let ingest = state.join("ingest");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: u64 = std::fs::read_dir(&ingest)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if held > 8 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    let interrupted = upload.await.unwrap();
    assert!(
        interrupted.is_err(),
        "the upload must fail when its server is killed"
    );

    let mut server = start(&state, &socket);
    let mut client = connect_unix(&socket).await;
    assert_eq!(
        check_store(&state),
        0,
        "no blob may appear from a cut upload"
    );
    assert_eq!(
        client
            .missing_blobs(std::slice::from_ref(&digest))
            .await
            .unwrap(),
        vec![digest.clone()],
        "the cut blob must be reported missing"
    );
    let status = client
        .blob_status(&digest, &digest, 256 << 20)
        .await
        .unwrap();
    let done = client
        .upload_blob(&digest, std::fs::metadata(&path).unwrap().len(), &path)
        .await
        .expect("the upload completes after a restart");
    eprintln!(
        "crash: held {} bytes after the restart; upload resumed from {}",
        status.offset, done.resumed_from
    );
    assert_eq!(check_store(&state), 1);
    assert!(client
        .missing_blobs(std::slice::from_ref(&digest))
        .await
        .unwrap()
        .is_empty());
    let _ = server.kill();
    let _ = server.wait();
}
