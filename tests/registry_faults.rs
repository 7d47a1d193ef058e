//! Registry faults: a proxy between `oxport serve` and the real
//! `docker-registry` injects connection resets, 500 and 503, 429 with
//! `Retry-After`, stalls, and a 401 in the middle of a push. A push either
//! completes, with every tag pointing at complete content, after bounded
//! retries, or fails with UNAVAILABLE and moves no tag.

mod registry_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use registry_support::faults::{Fault, FaultProxy, Rule};
use registry_support::{Registry, Server, ACCEPT, PASSWORD, USER};

/// Short retry delays, four attempts in all.
const BUDGET: &[(&str, &str)] = &[
    ("OXPORT_REGISTRY_ATTEMPTS", "4"),
    ("OXPORT_REGISTRY_RETRY_DELAY_MS", "20"),
];

fn rule(method: &'static str, path: &str, skip: usize, times: usize, fault: Fault) -> Rule {
    Rule {
        method,
        path: path.to_string(),
        skip,
        times,
        fault,
    }
}

/// A Docker config with the registry's Basic credentials for `host`.
fn docker_config(host: &str) -> tempfile::TempDir {
    registry_support::docker_config(host, USER, PASSWORD)
}

/// The example pushed through a server to `name`.
fn push(addr: &str, name: &str) -> Result<BTreeMap<String, String>, oxport::client::ClientError> {
    registry_support::push_example(
        addr,
        &[
            ("name", name),
            ("push", "true"),
            ("registry.insecure", "true"),
        ],
    )
}

/// Every manifest and blob reachable from `digest` is in the repository and
/// hashes to its name (asked of the registry directly, not via the proxy).
fn assert_complete(reg: &Registry, repo: &str, digest: &str) {
    let (got, m) = reg
        .manifest(repo, digest)
        .unwrap_or_else(|| panic!("manifest {digest} is missing"));
    assert_eq!(got, digest, "manifest bytes do not match their digest");
    for child in m["manifests"].as_array().into_iter().flatten() {
        assert_complete(reg, repo, child["digest"].as_str().unwrap());
    }
    let blobs = m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&m["config"]).filter(|c| c.is_object()));
    for b in blobs {
        let d = b["digest"].as_str().unwrap();
        let r = reg.get(&format!("/v2/{repo}/blobs/{d}"), "*/*");
        assert_eq!(r.status, 200, "blob {d} of {digest} is missing");
        assert_eq!(registry_support::sha256(&r.body), d, "blob {d} is corrupt");
    }
}

/// Every tag of the repository points at complete content.
fn assert_tags_complete(reg: &Registry, repo: &str) {
    for tag in reg.tags(repo) {
        let r = reg.get(&format!("/v2/{repo}/manifests/{tag}"), ACCEPT);
        assert_eq!(r.status, 200, "tag {tag}: {}", r.text());
        assert_complete(reg, repo, &registry_support::sha256(&r.body));
    }
}

#[test]
fn a_push_survives_resets_5xx_429_stalls_and_a_401_midway() {
    let Some(reg) = Registry::start(true) else {
        return;
    };
    let stall = Fault::Stall(Duration::from_secs(2));
    let proxy = FaultProxy::start(
        reg.port,
        vec![
            rule("POST", "/v2/demo/blobs/uploads/", 0, 1, Fault::Reset),
            rule("HEAD", "/v2/demo/blobs/", 1, 1, Fault::Status(503)),
            rule("PUT", "/v2/demo/blobs/uploads/", 1, 1, Fault::TooMany),
            rule(
                "PUT",
                "/v2/demo/manifests/sha256:",
                0,
                1,
                Fault::Status(500),
            ),
            rule(
                "PUT",
                "/v2/demo/manifests/sha256:",
                2,
                1,
                Fault::Unauthorized,
            ),
            rule("PUT", "/v2/demo/manifests/v1", 0, 1, stall),
        ],
    );
    let config = docker_config(&proxy.host());
    let mut env = BUDGET.to_vec();
    env.push(("DOCKER_CONFIG", config.path().to_str().unwrap()));
    let server = Server::start(&env);

    let resp = push(&server.addr, &format!("{}/demo:v1", proxy.host())).expect("the push");
    let digest = &resp["containerimage.digest"];
    let fired = proxy.fired();
    eprintln!("registry faults injected: {fired:?}");
    let mut kinds: Vec<&str> = fired.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        vec![
            "401 mid-push",
            "429 with Retry-After",
            "500",
            "503",
            "connection reset",
            "stall"
        ],
        "every fault must have been injected: {fired:?}"
    );
    assert_eq!(&reg.manifest("demo", "v1").expect("tag v1").0, digest);
    assert_tags_complete(&reg, "demo");
    eprintln!(
        "registry faults survived: {} injections of {} kinds",
        fired.len(),
        kinds.len()
    );
}

/// A fault that never clears: UNAVAILABLE after the budget, and no tag.
fn persistent(method: &'static str, path: &str, fault: Fault) {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let proxy = FaultProxy::start(reg.port, vec![rule(method, path, 0, usize::MAX, fault)]);
    let server = Server::start(BUDGET);
    let err = push(&server.addr, &format!("{}/demo:v1", proxy.host())).unwrap_err();
    assert_eq!(
        err.code(),
        Some(tonic::Code::Unavailable),
        "{:?}: {err}",
        fault
    );
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert!(!proxy.fired().is_empty(), "the fault was never injected");
    assert!(
        !reg.tags("demo").contains(&"v1".to_string()),
        "a tag moved after a failed push"
    );
    assert_tags_complete(&reg, "demo");
}

#[test]
fn manifests_answering_503_forever_fail_unavailable_and_move_no_tag() {
    persistent("PUT", "/v2/demo/manifests/", Fault::Status(503));
}

#[test]
fn blob_uploads_reset_forever_fail_unavailable_and_move_no_tag() {
    persistent("PUT", "/v2/demo/blobs/uploads/", Fault::Reset);
}

#[test]
fn the_tag_refused_with_429_forever_fails_unavailable_and_is_not_moved() {
    persistent("PUT", "/v2/demo/manifests/v1", Fault::TooMany);
}
