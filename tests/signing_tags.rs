//! cosign's older tag scheme (`oxport.sign-format=legacy` or `both`): the
//! `sha256-<hex>.sig` and `.att` tags, checked by cosign (pinned in
//! `tests/tools.sh`) on its older verification path, on Debian's
//! `docker-registry` and on a registry with the referrers API. A second
//! signing adds to the tags instead of replacing them, and a layout names
//! the tags in its `index.json`. `oxport verify` and `inspect` read the
//! tags, oxport's and cosign's own.

mod registry_support;
mod signing_support;
mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use signing_support::*;

/// `verify` on cosign's older path: its `.sig` and `.att` tags only.
fn verify_tags(bin: &Path, key: &Path, what: &str, image: &str) -> Output {
    verify_with(bin, key, what, image, &["--new-bundle-format=false"])
}

fn tags(port: u16, repo: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/tags/list")).body).unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// `oxport verify SRC --key KEY`; the number of signatures it printed as
/// verified when it passed, None when it refused.
fn oxport_verify(src: &str, key: &Path) -> Option<usize> {
    let o = registry_support::oxport(
        &["verify", "--insecure", src, "--key", key.to_str().unwrap()],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let verified = out.lines().filter(|l| l.ends_with(": verified")).count();
    o.status.success().then_some(verified)
}

/// The layers of the tag manifest `repo:tag`.
fn tag_layers(port: u16, repo: &str, tag: &str) -> Vec<Value> {
    let m: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/manifests/{tag}")).body).unwrap();
    m["layers"].as_array().unwrap().clone()
}

/// Every check of cosign's older path on one push: a `.sig` for the index
/// (and each platform when `recursive`), an `.att` for each platform with
/// its provenance and SBOM, each verifying with `public` and not with
/// another key.
fn check_tags(bin: &Path, port: u16, repo: &str, keys: (&Path, &Path), recursive: bool) {
    let (public, other) = keys;
    let host = format!("127.0.0.1:{port}");
    let listed = tags(port, repo);
    let index = root(port, repo);
    let digests = platforms(port, repo);
    assert_eq!(digests.len(), 2, "two platforms");
    if !recursive {
        for d in &digests {
            let sig = format!("{}.sig", d.replace(':', "-"));
            assert!(!listed.contains(&sig), "{sig} in {listed:?}");
        }
    }
    let signed = if recursive { &digests[..] } else { &[] };
    for d in std::iter::once(&index).chain(signed) {
        let sig = format!("{}.sig", d.replace(':', "-"));
        assert!(listed.contains(&sig), "{sig} in {listed:?}");
        let image = format!("{host}/{repo}@{d}");
        assert_verifies(
            &verify_tags(bin, public, "", &image),
            &format!("verify --new-bundle-format=false {image}"),
        );
        assert_refused(
            &verify_tags(bin, other, "", &image),
            "verify --new-bundle-format=false with another key",
            "no matching signatures",
        );
    }
    for d in &digests {
        let att = format!("{}.att", d.replace(':', "-"));
        assert!(listed.contains(&att), "{att} in {listed:?}");
        let layers = tag_layers(port, repo, &att);
        assert_eq!(layers.len(), 2, "provenance and SBOM: {layers:?}");
        let image = format!("{host}/{repo}@{d}");
        for t in ["slsaprovenance1", "spdxjson"] {
            assert_verifies(
                &verify_tags(bin, public, t, &image),
                &format!("verify-attestation --new-bundle-format=false --type {t} {image}"),
            );
        }
    }
    // The tag verifies as the index does.
    assert_verifies(
        &verify_tags(bin, public, "", &format!("{host}/{repo}:1")),
        "verify --new-bundle-format=false of the tag",
    );
}

#[test]
fn both_forms_verify_on_both_registries() {
    let Some((bin, plain, referrers)) = cosign_and_registries() else {
        return;
    };
    let (_, public) = key_args("cosign");
    let (_, other) = key_args("plain");
    for port in [plain.port, referrers.port] {
        let host = format!("127.0.0.1:{port}");
        push_with(
            &host,
            "both",
            "cosign",
            ",oxport.sign-format=both,oxport.sign-recursive=true",
        );
        // The bundles, on cosign's default path, as without the tags.
        check_signed(&bin, port, "both", "cosign", true);
        check_tags(&bin, port, "both", (&public, &other), true);
    }
}

#[test]
fn legacy_alone_is_found_by_default_and_a_second_signing_adds_to_the_tags() {
    let Some((bin, plain, _referrers)) = cosign_and_registries() else {
        return;
    };
    let port = plain.port;
    let host = plain.host();
    let (_, cosign_pub) = key_args("cosign");
    let (_, plain_pub) = key_args("plain");
    push_with(&host, "legacy", "plain", ",oxport.sign-format=legacy");
    check_tags(&bin, port, "legacy", (&plain_pub, &cosign_pub), false);
    // No bundles: the index has no referrers at all, so no fallback tag.
    let index = root(port, "legacy");
    let listed = tags(port, "legacy");
    assert!(
        !listed.contains(&index.replace(':', "-")),
        "a fallback tag for the index: {listed:?}"
    );
    // oxport's own verifier reads the tags as cosign does: the index's
    // signature and the four statements (two per platform) verify.
    let src = format!("docker://{host}/legacy:1");
    assert_eq!(oxport_verify(&src, &plain_pub), Some(5));
    assert_eq!(oxport_verify(&src, &cosign_pub), None, "another key");
    // cosign's default path finds no bundle and falls back to the tags.
    let digests = platforms(port, "legacy");
    let image = format!("{host}/legacy@{}", digests[0]);
    assert_verifies(
        &verify(&bin, &plain_pub, "", &format!("{host}/legacy:1")),
        "verify (default path) of a tag-only signature",
    );
    assert_verifies(
        &verify(&bin, &plain_pub, "spdxjson", &image),
        "verify-attestation (default path) of a tag-only attestation",
    );

    // The same image signed again with another key: the tags keep the
    // first signature and gain the second.
    push_with(&host, "legacy", "cosign", ",oxport.sign-format=legacy");
    let sig = format!("{}.sig", index.replace(':', "-"));
    assert_eq!(tag_layers(port, "legacy", &sig).len(), 2, "{sig}");
    // Each key now verifies its half of the ten signatures.
    assert_eq!(oxport_verify(&src, &plain_pub), Some(5));
    assert_eq!(oxport_verify(&src, &cosign_pub), Some(5));
    for key in [&plain_pub, &cosign_pub] {
        assert_verifies(
            &verify_tags(&bin, key, "", &format!("{host}/legacy@{index}")),
            &format!("verify the index with {} after two signings", key.display()),
        );
    }
    for d in &digests {
        let att = format!("{}.att", d.replace(':', "-"));
        assert_eq!(tag_layers(port, "legacy", &att).len(), 4, "{att}");
        let image = format!("{host}/legacy@{d}");
        for key in [&plain_pub, &cosign_pub] {
            assert_verifies(
                &verify_tags(&bin, key, "slsaprovenance1", &image),
                &format!("verify-attestation {image} after two signings"),
            );
        }
    }
}

#[test]
fn a_layout_names_the_tags_and_a_keyless_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("signed.tar");
    let (args, _) = key_args("plain");
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = format!(
        "type=oci,dest={},source-date-epoch=0,oxport.sign=release,oxport.sign-format=legacy",
        tar.display()
    );
    let (o, _) = registry_support::export_example(&output, &extra, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = tar_index(&tar);
    let entries = index["manifests"].as_array().unwrap();
    let root = entries[0]["digest"].as_str().unwrap().replace(':', "-");
    let names: Vec<&str> = entries[1..]
        .iter()
        .map(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    // The index signed, two platforms attested; no bundles.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&format!("{root}.sig").as_str()), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".sig")).count(), 1);
    assert_eq!(names.iter().filter(|n| n.ends_with(".att")).count(), 2);
    // oxport reads the tags as signatures, not as images of their own.
    let (_, public) = key_args("plain");
    let src = format!("oci-archive:{}", tar.display());
    assert_eq!(oxport_verify(&src, &public), Some(5));
    assert_eq!(oxport_verify(&src, &key_args("cosign").1), None);
    let o = registry_support::oxport(&["inspect", "--format", "json", &src], &[]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["roots"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        report["signatures"].as_array().unwrap().len(),
        5,
        "{report}"
    );
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");

    // A format without a key is refused, naming the attribute, and leaves
    // no output.
    let refused = dir.path().join("refused.tar");
    let (o, _) = registry_support::export_example(
        &format!(
            "type=oci,dest={},oxport.sign-format=both",
            refused.display()
        ),
        &extra,
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("oxport.sign-format"), "{err}");
    assert!(
        !refused.exists(),
        "a refused export left {}",
        refused.display()
    );
}

#[test]
fn oxport_verify_reads_the_sig_tag_cosign_writes() {
    let Some((bin, plain, _referrers)) = cosign_and_registries() else {
        return;
    };
    let host = plain.host();
    push(&host, "by-cosign", "");
    let index = root(plain.port, "by-cosign");
    let k = keys();
    let password = std::fs::read_to_string(k.join("cosign.password")).unwrap();
    let o = std::process::Command::new(&bin)
        .args(["sign", "--yes", "--key"])
        .arg(k.join("cosign.key"))
        .args([
            "--tlog-upload=false",
            "--new-bundle-format=false",
            "--use-signing-config=false",
            "--allow-http-registry",
            &format!("{host}/by-cosign@{index}"),
        ])
        .env("HOME", std::env::temp_dir())
        .env("COSIGN_PASSWORD", password.trim_end())
        .output()
        .expect("run cosign sign");
    assert_verifies(&o, "sign --new-bundle-format=false");
    let sig = format!("{}.sig", index.replace(':', "-"));
    assert!(tags(plain.port, "by-cosign").contains(&sig));
    let src = format!("docker://{host}/by-cosign:1");
    assert_eq!(oxport_verify(&src, &k.join("cosign.pub")), Some(1));
    assert_eq!(oxport_verify(&src, &k.join("plain-pkcs8.pub")), None);
}
