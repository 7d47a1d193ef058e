//! What the registry client refuses to send: credentials to an upload
//! location on another origin, and references whose digest is not a digest
//! (which would otherwise be put into a URL path). Both against Debian's
//! `docker-registry`.

mod registry_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use registry_support::faults::FaultProxy;
use registry_support::{example_case, free_port, oxport, KillProxy, Registry, PASSWORD, USER};

fn basic() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

/// Inserts `Authorization: Basic ...` after the request line.
fn with_credentials(raw: &mut Vec<u8>) {
    let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let line = format!("Authorization: Basic {}\r\n", basic());
    raw.splice(eol..eol, line.into_bytes());
}

#[test]
fn upload_locations_on_another_origin_get_no_credentials() {
    // The registry names its upload locations on another origin (its
    // `http.host`): a proxy on another port that records whether a request
    // came with an Authorization header, then forwards it with the
    // registry's credentials of its own, as a storage front would.
    let port = free_port();
    let seen = Arc::new(AtomicUsize::new(0));
    let leaked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (s, l) = (Arc::clone(&seen), Arc::clone(&leaked));
    let hook = Arc::new(move |method: &str, path: &str, raw: &mut Vec<u8>| {
        s.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        if head.contains("\r\nauthorization:") {
            l.lock().unwrap().push(format!("{method} {path}"));
            return;
        }
        with_credentials(raw);
    });
    let front = FaultProxy::start_with_hook(port, Vec::new(), Some(hook));
    let http_extra = format!("  host: http://127.0.0.1:{}\n", front.port);
    let Some(reg) = Registry::start_with(true, port, &http_extra) else {
        return;
    };
    let config = registry_support::docker_config(&reg.host(), USER, PASSWORD);

    let case = example_case();
    let out = oxport(
        &[
            "export",
            "--result",
            case.to_str().unwrap(),
            "--output",
            &format!("type=image,name={}/demo:v1,push=true", reg.host()),
        ],
        &[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("OXPORT_REGISTRY_ATTEMPTS", "2"),
            ("OXPORT_REGISTRY_RETRY_DELAY_MS", "10"),
        ],
    );
    let leaked = leaked.lock().unwrap().clone();
    let seen = seen.load(Ordering::SeqCst);
    eprintln!(
        "other origin: {seen} requests, {} with credentials",
        leaked.len()
    );
    assert!(seen > 0, "no upload went to the other origin");
    assert!(
        leaked.is_empty(),
        "credentials went to another origin with {} requests, the first: {:.80}",
        leaked.len(),
        leaked[0]
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reg.manifest("demo", "v1").is_some(), "the tag is missing");
}

#[test]
fn a_reference_whose_digest_is_not_a_digest_reaches_no_registry() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    // Records every byte clients send; the trigger never occurs.
    let proxy = KillProxy::start(reg.port, "\u{0}never\u{0}", || {});
    let host = format!("127.0.0.1:{}", proxy.port);
    let case = example_case();
    let bad = [
        "sha256:../../x",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ];
    for digest in bad {
        let reference = format!("{host}/img:v1@{digest}");
        let inspect = oxport(&["inspect", &format!("docker://{reference}")], &[]);
        let push = oxport(
            &[
                "export",
                "--result",
                case.to_str().unwrap(),
                "--output",
                &format!("type=image,name={reference},push=true"),
            ],
            &[],
        );
        for (what, out) in [("inspect", &inspect), ("push", &push)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} {reference} succeeded");
            assert!(
                err.contains("invalid reference format") && err.contains("digest"),
                "{what} {reference}: {err}"
            );
        }
    }
    assert_eq!(
        proxy.occurrences("HTTP/1.1"),
        0,
        "a request reached the registry"
    );
}
