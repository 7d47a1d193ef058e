//! Pushers sharing one repository of Debian's `docker-registry`.
//!
//! - A manifest PUT answered `400 MANIFEST_BLOB_UNKNOWN` after the blob HEAD
//!   said "present": concurrent uploads of one blob rewrite the
//!   repository's link to it, and a PUT that checks the link meanwhile finds
//!   none. The race is made certain here by removing the link of a config
//!   blob from the registry's storage just before the first manifest PUT
//!   (the registry itself then answers the 400).
//! - Many pushers, each round into a fresh repository, pushing images that
//!   share their platform manifests and attach different attestations to
//!   them: every push must succeed (the same race, for real), and the
//!   fallback tag of each subject must list every pusher's entries.

mod registry_support;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_support::faults::FaultProxy;
use registry_support::{Registry, ACCEPT};

/// Pushes the example to `name`; the process output and the response map.
fn push(name: &str, env: &[(&str, &str)]) -> (Output, BTreeMap<String, String>) {
    registry_support::export_example(&format!("type=image,name={name},push=true"), &[], env)
}

fn link_of(reg: &Registry, repo: &str, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.dir
        .path()
        .join("data/docker/registry/v2/repositories")
        .join(repo)
        .join("_layers/sha256")
        .join(hex)
        .join("link")
}

#[test]
fn a_manifest_naming_a_blob_the_registry_lost_is_repaired_and_put_again() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let storage = reg.dir.path().to_path_buf();
    let done = Arc::new(AtomicBool::new(false));
    let removed = Arc::new(std::sync::Mutex::new(None::<String>));
    let (d, r) = (Arc::clone(&done), Arc::clone(&removed));
    let hook = Arc::new(move |method: &str, path: &str, raw: &mut Vec<u8>| {
        if method != "PUT" || !path.starts_with("/v2/demo/manifests/sha256:") {
            return;
        }
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&raw[split..]) else {
            return;
        };
        let Some(config) = m.pointer("/config/digest").and_then(|c| c.as_str()) else {
            return;
        };
        if d.swap(true, Ordering::SeqCst) {
            return;
        }
        let hex = config.strip_prefix("sha256:").unwrap();
        let link = storage
            .join("data/docker/registry/v2/repositories/demo/_layers/sha256")
            .join(hex)
            .join("link");
        std::fs::remove_file(&link).expect("remove the config's link");
        *r.lock().unwrap() = Some(config.to_string());
    });
    let proxy = FaultProxy::start_with_hook(reg.port, Vec::new(), Some(hook));
    let (o, resp) = push(
        &format!("{}/demo:v1", proxy.host()),
        &[
            ("OXPORT_REGISTRY_ATTEMPTS", "4"),
            ("OXPORT_REGISTRY_RETRY_DELAY_MS", "20"),
        ],
    );
    let config = removed
        .lock()
        .unwrap()
        .clone()
        .expect("the link was never removed");
    assert!(
        o.status.success(),
        "the push failed after the registry lost blob {config}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        link_of(&reg, "demo", &config).is_file(),
        "{config} was not uploaded again"
    );
    let digest = &resp["containerimage.digest"];
    assert_eq!(&reg.manifest("demo", "v1").expect("tag v1").0, digest);
    let r = reg.get(&format!("/v2/demo/blobs/{config}"), "*/*");
    assert_eq!(r.status, 200, "blob {config}");
    assert_eq!(registry_support::sha256(&r.body), config);
}

/// The digests a fallback tag lists (empty when there is none).
fn fallback_listed(reg: &Registry, repo: &str, subject: &str) -> Vec<String> {
    let tag = subject.replace(':', "-");
    let r = reg.get(&format!("/v2/{repo}/manifests/{tag}"), ACCEPT);
    if r.status == 404 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Image manifests and, by subject, the attestation manifest of one pushed index.
fn attestations(reg: &Registry, repo: &str, digest: &str) -> BTreeMap<String, String> {
    let (_, index) = reg.manifest(repo, digest).expect("pushed index");
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let subject = m["annotations"]["vnd.docker.reference.digest"].as_str()?;
            Some((subject.to_string(), m["digest"].as_str()?.to_string()))
        })
        .collect()
}

/// Pushers per round and rounds; the environment may lower them.
fn contention_size() -> (usize, usize) {
    let n = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (n("OXPORT_TEST_PUSHERS", 8), n("OXPORT_TEST_ROUNDS", 20))
}

#[test]
fn concurrent_attestations_of_one_subject_all_end_up_in_the_fallback_tag() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let (pushers, rounds) = contention_size();
    let host = reg.host();
    let started = Instant::now();
    let (mut lost, mut listed_total, mut failed) = (0usize, 0usize, Vec::new());
    for round in 0..rounds {
        // Every pusher names another tag, so its statements (which name the
        // tag) and attestation manifests differ; the images are shared.
        let repo = format!("shared{round}");
        let handles: Vec<_> = (0..pushers)
            .map(|p| {
                let name = format!("{host}/{repo}:p{p}");
                std::thread::spawn(move || push(&name, &[]))
            })
            .collect();
        let mut ours = Vec::new();
        for h in handles {
            let (o, resp) = h.join().unwrap();
            if !o.status.success() {
                failed.push(format!(
                    "round {round}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
                continue;
            }
            ours.push(attestations(&reg, &repo, &resp["containerimage.digest"]));
        }
        for atts in &ours {
            for (subject, att) in atts {
                listed_total += 1;
                if !fallback_listed(&reg, &repo, subject).contains(att) {
                    lost += 1;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the rounds take too long"
        );
    }
    eprintln!(
        "fallback tag contention: {pushers} pushers x {rounds} rounds in {:?}: {lost} of {listed_total} entries lost, {} pushes failed",
        started.elapsed(),
        failed.len()
    );
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    assert_eq!(lost, 0, "entries lost from the fallback tags");
}
