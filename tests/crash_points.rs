//! Crash points of a blob commit: the server dies at each step (after the
//! bytes are written, after their fsync, after the rename into place, after
//! the directory's fsync) through its `OXPORT_TEST_CRASH_AT` hook, round after
//! round on one state directory. After every crash no blob may mismatch its
//! name, no blob committed in an earlier round may be lost, and a restarted
//! server must take the interrupted upload again.

mod grpc_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpc_support::{blob, connect_unix, digest_of, BIN};

const STEPS: [&str; 4] = [
    "after-write",
    "after-fsync",
    "after-rename",
    "after-dir-fsync",
];
const ROUNDS: usize = 3;

fn start(state: &Path, socket: &Path, crash_at: Option<&str>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen"])
        .arg(format!("unix://{}", socket.display()))
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match crash_at {
        Some(step) => cmd.env("OXPORT_TEST_CRASH_AT", step),
        None => cmd.env_remove("OXPORT_TEST_CRASH_AT"),
    };
    cmd.spawn().expect("start oxport serve")
}

/// The committed blobs, each checked to hash to its name.
fn committed(state: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(state.join("blobs/sha256"))
        .into_iter()
        .flatten()
    {
        let entry = entry.unwrap();
        let name = format!("sha256:{}", entry.file_name().to_string_lossy());
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(digest_of(&bytes), name, "a blob does not hash to its name");
        out.insert(name);
    }
    out
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not die at its crash point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_commit_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (state, socket) = (dir.path().join("state"), dir.path().join("s.sock"));
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut seed = 0u8;
    for round in 0..ROUNDS {
        for step in STEPS {
            seed = seed.wrapping_add(1);
            // 5 MiB: large enough for the store's direct I/O path.
            let data = blob(seed, 5 << 20);
            let digest = digest_of(&data);
            let path = dir.path().join("blob");
            std::fs::write(&path, &data).unwrap();

            let mut server = start(&state, &socket, Some(step));
            let mut client = connect_unix(&socket).await;
            let r = client.upload_blob(&digest, data.len() as u64, &path).await;
            let status = wait_exit(&mut server);
            assert!(r.is_err(), "round {round}, {step}: the upload succeeded");
            assert!(!status.success(), "round {round}, {step}: {status:?}");

            let mut server = start(&state, &socket, None);
            let mut client = connect_unix(&socket).await;
            let now = committed(&state);
            let lost: Vec<&String> = kept.difference(&now).collect();
            assert!(lost.is_empty(), "round {round}, {step}: lost {lost:?}");
            client
                .upload_blob(&digest, data.len() as u64, &path)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {step}: upload after restart: {e}"));
            assert!(client
                .missing_blobs(std::slice::from_ref(&digest))
                .await
                .unwrap()
                .is_empty());
            kept.insert(digest);
            let _ = server.kill();
            let _ = server.wait();
        }
    }
    assert_eq!(committed(&state), kept);
    eprintln!(
        "crash points: {} crashes over {ROUNDS} rounds of {} steps, {} blobs kept",
        ROUNDS * STEPS.len(),
        STEPS.len(),
        kept.len()
    );
}
