//! `type=image,push=true` against real processes: Debian's `docker-registry`
//! (no referrers API, so the fallback tag path), with and without Basic auth,
//! a registry killed midway, concurrent pushers, and a referrers-capable test
//! double. skopeo reads the pushed image independently.

mod registry_support;
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use registry_support::fake::FakeRegistry;
use registry_support::{example_case, oxport, KillProxy, Registry, Server, PASSWORD, USER};

const ATTESTATION_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `oxport export` of the example to `name` with push; returns the process
/// output and the response map.
fn push(
    name: &str,
    extra: &str,
    addr: Option<&str>,
    env: &[(&str, &str)],
) -> (Output, BTreeMap<String, String>) {
    let output = format!("type=image,name={name},push=true,registry.insecure=true{extra}");
    let addr: Vec<&str> = addr.map(|a| vec!["--addr", a]).unwrap_or_default();
    registry_support::export_example(&output, &addr, env)
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "oxport failed: {}", stderr(o));
}

/// The root digest of a tar export of the same result under the same name.
fn tar_export_digest(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = format!(
        "type=oci,dest={},name={name}",
        dir.path().join("o.tar").display()
    );
    let (o, m) = registry_support::export_example(&output, &[], &[]);
    assert_ok(&o);
    m["containerimage.digest"].clone()
}

/// (image manifest digests, attestation manifest digest by subject) of a pushed index.
fn split_index(index: &serde_json::Value) -> (Vec<String>, BTreeMap<String, String>) {
    let mut images = Vec::new();
    let mut atts = BTreeMap::new();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap().to_string();
        match m["annotations"]["vnd.docker.reference.digest"].as_str() {
            Some(subject) => {
                atts.insert(subject.to_string(), d);
            }
            None => images.push(d),
        }
    }
    (images, atts)
}

fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The digests and artifact types a fallback index lists.
fn fallback_entries(reg: &Registry, repo: &str, subject: &str) -> Vec<(String, String)> {
    let (_, index) = reg
        .manifest(repo, &fallback_tag(subject))
        .unwrap_or_else(|| panic!("no fallback tag for {subject}"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["artifactType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn layer_digests() -> Vec<String> {
    oxport::casefile::load(&example_case())
        .unwrap()
        .layer_blobs()
        .into_iter()
        .map(|(d, _, _)| d)
        .collect()
}

#[test]
fn push_matches_the_tar_export_and_leaves_fallback_tags() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let name = format!("{}/demo:v1", reg.host());
    let (o, resp) = push(&name, "", None, &[]);
    assert_ok(&o);
    let digest = resp["containerimage.digest"].clone();
    assert_eq!(
        digest,
        tar_export_digest(&name),
        "push and tar export differ"
    );
    assert_eq!(resp["image.name"], name);
    assert!(
        !resp.contains_key("containerimage.config.digest"),
        "an index has no single config"
    );

    let (tagged, index) = reg.manifest("demo", "v1").expect("tag v1");
    assert_eq!(tagged, digest);

    // skopeo, an independent reader, sees the same bytes.
    if let Some(skopeo) = support::require_tool("skopeo", "skopeo reading the pushed index") {
        let out = Command::new(skopeo)
            .args([
                "inspect",
                "--raw",
                &format!("docker://{name}"),
                "--tls-verify=false",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(registry_support::sha256(&out.stdout), digest);
    }

    // One fallback tag per image manifest, listing its attestation manifest.
    let (images, atts) = split_index(&index);
    assert_eq!(images.len(), 2);
    let tags = reg.tags("demo");
    for image in &images {
        assert!(
            tags.contains(&fallback_tag(image)),
            "tags {tags:?} lack {image}"
        );
        assert_eq!(
            fallback_entries(&reg, "demo", image),
            vec![(atts[image].clone(), ATTESTATION_TYPE.to_string())]
        );
    }
    let first = stderr(&o);
    assert!(first.contains("blobs: 10 written"), "progress: {first}");

    // Again: every blob is skipped, no layer byte is uploaded.
    let (o, resp) = push(&name, "", None, &[]);
    assert_ok(&o);
    assert_eq!(resp["containerimage.digest"], digest);
    let again = stderr(&o);
    assert!(
        again.contains("blobs: 0 written (0 B), 10 skipped, 0 mounted"),
        "progress: {again}"
    );
    for layer in layer_digests() {
        let short = &layer[..19];
        assert!(
            again.contains(&format!("{short}: skipped")),
            "{short} not skipped: {again}"
        );
    }
    // The fallback tags still list exactly one entry each.
    for image in &images {
        assert_eq!(fallback_entries(&reg, "demo", image).len(), 1);
    }
}

#[test]
fn by_digest_and_policy_never_move_no_tag_and_names_mount() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let server = Server::start(&[]);
    let name = format!("{}/plain:v1", reg.host());
    let (o, resp) = push(
        &name,
        ",push-by-digest=true,referrers-fallback=never",
        Some(&server.addr),
        &[],
    );
    assert_ok(&o);
    assert!(
        reg.tags("plain").is_empty(),
        "tags: {:?}",
        reg.tags("plain")
    );
    let digest = &resp["containerimage.digest"];
    assert_eq!(&reg.manifest("plain", digest).expect("by digest").0, digest);

    // Two repositories of one registry: the second mounts from the first.
    let names = format!("\"name={0}/one:v1,{0}/two:v1\"", reg.host());
    let dir = tempfile::tempdir().unwrap();
    let case = example_case();
    let o = oxport(
        &[
            "export",
            "--result",
            case.to_str().unwrap(),
            "--output",
            &format!("type=image,{names},push=true,registry.insecure=true"),
            "--metadata-file",
            dir.path().join("m.json").to_str().unwrap(),
        ],
        &[],
    );
    assert_ok(&o);
    let text = stderr(&o);
    assert!(
        text.contains("blobs: 10 written") && text.contains("10 mounted"),
        "progress: {text}"
    );
    assert!(reg.manifest("one", "v1").is_some() && reg.manifest("two", "v1").is_some());
}

#[test]
fn basic_auth_pushes_and_a_wrong_password_moves_no_tag() {
    let Some(reg) = Registry::start(true) else {
        return;
    };
    let config = |password: &str| registry_support::docker_config(&reg.host(), USER, password);
    let good = config(PASSWORD);
    let good_env = [("DOCKER_CONFIG", good.path().to_str().unwrap())];
    let name = format!("{}/secure:v1", reg.host());
    let (o, resp) = push(&name, "", None, &good_env);
    assert_ok(&o);
    let digest = resp["containerimage.digest"].clone();
    assert_eq!(reg.manifest("secure", "v1").unwrap().0, digest);

    // A different image (an extra annotation) with a wrong password.
    let bad = config("wrong-password");
    let bad_env = [("DOCKER_CONFIG", bad.path().to_str().unwrap())];
    let (o, _) = push(&name, ",annotation.org.example.v=2", None, &bad_env);
    assert!(!o.status.success());
    let text = stderr(&o);
    assert!(text.contains("authentication failed"), "stderr: {text}");
    assert!(
        !text.contains("wrong-password") && !text.contains(PASSWORD),
        "a secret leaked: {text}"
    );

    // A server uses its own Docker config only with --docker-credentials:
    // without it, the good config is not read and the push is anonymous.
    let server = Server::start_with(&[], &good_env);
    let err = export_via(&server.addr, &name, &[("annotation.org.example.v", "2")]).unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated), "{err}");
    drop(server);

    // Through a server: the status code is UNAUTHENTICATED.
    let server = Server::start(&bad_env);
    let err = export_via(&server.addr, &name, &[("annotation.org.example.v", "2")]).unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated), "{err}");
    assert_eq!(
        reg.manifest("secure", "v1").unwrap().0,
        digest,
        "the tag moved"
    );

    // Without credentials at all.
    let empty = tempfile::tempdir().unwrap();
    let (o, _) = push(
        &name,
        "",
        None,
        &[("DOCKER_CONFIG", empty.path().to_str().unwrap())],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no credentials"),
        "stderr: {}",
        stderr(&o)
    );
}

/// One export through the library client, with extra attributes.
fn export_via(
    addr: &str,
    name: &str,
    attrs: &[(&str, &str)],
) -> Result<BTreeMap<String, String>, oxport::client::ClientError> {
    let base = [
        ("name", name),
        ("push", "true"),
        ("registry.insecure", "true"),
    ];
    let all: Vec<(&str, &str)> = base.iter().chain(attrs).copied().collect();
    registry_support::push_example(addr, &all)
}

#[test]
fn a_registry_killed_midway_gives_unavailable_and_a_rerun_completes() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    // The registry dies when the image index arrives, after every blob and
    // manifest it names. Not at the first manifest: a push puts manifests
    // next to uploads still running, and a docker-registry killed inside an
    // upload once answered the rerun's manifest PUT with 500 three times
    // (its own storage, which the rerun cannot see into).
    let proxy = KillProxy::start(
        reg.port,
        "content-type: application/vnd.oci.image.index.v1+json",
        reg.killer(),
    );
    let budget = [
        ("OXPORT_REGISTRY_ATTEMPTS", "3"),
        ("OXPORT_REGISTRY_RETRY_DELAY_MS", "50"),
    ];
    let server = Server::start(&budget);
    let name = format!("127.0.0.1:{}/demo:v1", proxy.port);
    let err = export_via(&server.addr, &name, &[]).unwrap_err();
    assert!(
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the trigger never fired"
    );
    assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");

    reg.restart();
    proxy.disarm();
    assert!(
        !reg.tags("demo").contains(&"v1".to_string()),
        "a tag moved after a failure"
    );
    let (o, resp) = push(&name, "", Some(&server.addr), &[]);
    assert_ok(&o);
    assert_eq!(
        reg.manifest("demo", "v1").unwrap().0,
        resp["containerimage.digest"]
    );
}

#[test]
fn concurrent_pushers_are_both_listed_in_the_fallback_tag() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    // Two tags name the same images; the statements (which name the tag)
    // differ, so each push attaches its own attestation manifests.
    let host = reg.host();
    let pushers: Vec<_> = ["c1", "c2"]
        .into_iter()
        .map(|tag| {
            let name = format!("{host}/shared:{tag}");
            std::thread::spawn(move || push(&name, "", None, &[]))
        })
        .collect();
    let mut indexes = Vec::new();
    for p in pushers {
        let (o, resp) = p.join().unwrap();
        assert_ok(&o);
        let (digest, index) = reg
            .manifest("shared", &resp["containerimage.digest"])
            .expect("pushed index");
        assert_eq!(digest, resp["containerimage.digest"]);
        indexes.push(split_index(&index));
    }
    let (images, atts1) = &indexes[0];
    let (images2, atts2) = &indexes[1];
    assert_eq!(images, images2, "the image manifests should be shared");
    for image in images {
        assert_ne!(atts1[image], atts2[image]);
        let listed: Vec<String> = fallback_entries(&reg, "shared", image)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert!(
            listed.contains(&atts1[image]) && listed.contains(&atts2[image]),
            "{listed:?}"
        );
        assert_eq!(listed.len(), 2);
    }
}

#[test]
fn a_referrers_capable_registry_gets_no_fallback_tag() {
    let fake = FakeRegistry::start();
    let name = format!("{}/demo:v1", fake.host());
    let (o, resp) = push(&name, "", None, &[]);
    assert_ok(&o);
    assert_eq!(fake.tags("demo"), vec!["v1".to_string()]);
    let digest = &resp["containerimage.digest"];
    {
        let st = fake.state.lock().unwrap();
        let index: serde_json::Value = serde_json::from_slice(&st.manifests[digest].1).unwrap();
        let (images, atts) = split_index(&index);
        for image in &images {
            let key = ("demo".to_string(), image.clone());
            assert_eq!(st.referrers[&key], vec![atts[image].clone()]);
        }
        assert!(
            !st.log.iter().any(|l| l.contains("/manifests/sha256-")),
            "a fallback tag was touched"
        );
    }

    // `always` writes it anyway; out of the index, attestations stay findable.
    let name = format!("{}/detached:v1", fake.host());
    let (o, resp) = push(
        &name,
        ",referrers-fallback=always,attestations-in-index=false",
        None,
        &[],
    );
    assert_ok(&o);
    let st = fake.state.lock().unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&st.manifests[&resp["containerimage.digest"]].1).unwrap();
    let (images, atts) = split_index(&index);
    assert!(atts.is_empty(), "attestations listed in the index");
    assert_eq!(images.len(), 2);
    let tags = &st.tags["detached"];
    for image in &images {
        let referrers = &st.referrers[&("detached".to_string(), image.clone())];
        assert_eq!(referrers.len(), 1);
        assert!(
            tags.contains_key(&fallback_tag(image)),
            "no fallback tag for {image}"
        );
    }
}
