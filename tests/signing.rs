//! Signatures that the real verifier, cosign (pinned in `tests/tools.sh`),
//! accepts: images and their attestations pushed with `oxport.sign=NAME` to
//! Debian's `docker-registry` (no referrers API: the fallback tag) and to a
//! registry with the referrers API (go-containerregistry's, built from
//! `tests/tools/referrers-registry`), with cosign's encrypted key and with a
//! plain PKCS#8 key. A wrong key, a tampered statement and a missing
//! signature each fail.

mod registry_support;
mod signing_support;
mod support;

use std::path::Path;

use registry_support::http_request;
use serde_json::Value;
use signing_support::*;

#[test]
fn cosign_verifies_signed_pushes_on_both_registries_with_both_key_forms() {
    let Some((bin, plain, referrers)) = cosign_and_registries() else {
        return;
    };
    // One key form with each platform manifest signed too, one without.
    for (kind, recursive) in [("cosign", true), ("plain", false)] {
        let attrs = if recursive {
            ",oxport.sign-recursive=true"
        } else {
            ""
        };
        push_with(&plain.host(), kind, kind, attrs);
        check_signed(&bin, plain.port, kind, kind, recursive);
        // Without the referrers API the signatures are found through the
        // fallback tag of each signed manifest.
        let tags = plain.tags(kind);
        let index = root(plain.port, kind);
        for d in platforms(plain.port, kind).iter().chain([&index]) {
            let fallback = d.replace(':', "-");
            assert!(tags.contains(&fallback), "{fallback} in {tags:?}");
        }
        push_with(&format!("127.0.0.1:{}", referrers.port), kind, kind, attrs);
        check_signed(&bin, referrers.port, kind, kind, recursive);
    }
}

#[test]
fn a_missing_or_tampered_signature_fails_verification() {
    let Some(bin) = support::require_pinned_tool("cosign", PURPOSE) else {
        return;
    };
    let Some(reg) = ReferrersRegistry::start() else {
        return;
    };
    let host = format!("127.0.0.1:{}", reg.port);
    let (_, public) = key_args("cosign");

    push(&host, "unsigned", "");
    let o = verify(&bin, &public, "", &format!("{host}/unsigned:1"));
    assert_refused(&o, "verify of an unsigned image", "no signatures found");

    push(&host, "tampered", "cosign");
    let platform = platforms(reg.port, "tampered").remove(0);
    let image = format!("{host}/tampered@{platform}");
    assert_verifies(
        &verify(&bin, &public, "spdxjson", &image),
        "before tampering",
    );
    tamper_sbom_signature(reg.port, "tampered", &platform);
    let o = verify(&bin, &public, "spdxjson", &image);
    // cosign drops the bundle whose signature fails, so no SPDX
    // attestation is left (the tampered one is listed: see tamper_sbom_signature).
    assert_refused(
        &o,
        "verify-attestation of a tampered SBOM",
        "none of the attestations matched the predicate type: spdxjson",
    );
    // The provenance next to it is untouched and still verifies.
    assert_verifies(
        &verify(&bin, &public, "slsaprovenance1", &image),
        "untouched",
    );
}

/// Replaces the SBOM signature of `platform` by one whose statement was
/// changed after signing (the signature kept): a new bundle blob, a new
/// referrer manifest, and the genuine one deleted.
fn tamper_sbom_signature(port: u16, repo: &str, platform: &str) {
    let list: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/referrers/{platform}")).body)
            .unwrap();
    let genuine = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["dev.sigstore.bundle.predicateType"] == "https://spdx.dev/Document"
        })
        .expect("an SBOM signature")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/manifests/{genuine}")).body)
            .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bundle: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/blobs/{layer}")).body).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let statement = b64
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let original = String::from_utf8(statement).unwrap();
    let changed = original.replacen("SPDX-2.3", "SPDX-2.2", 1);
    assert_ne!(changed, original, "the SBOM statement names SPDX-2.3");
    bundle["dsseEnvelope"]["payload"] = b64.encode(changed).into();
    let bundle = serde_json::to_vec(&bundle).unwrap();
    let digest = registry_support::sha256(&bundle);
    put_blob(port, repo, &bundle, &digest);
    manifest["layers"][0]["digest"] = digest.into();
    manifest["layers"][0]["size"] = bundle.len().into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let d = registry_support::sha256(&bytes);
    let media = "application/vnd.oci.image.manifest.v1+json";
    let r = http_request(
        port,
        "PUT",
        &format!("/v2/{repo}/manifests/{d}"),
        &[("Content-Type", media)],
        Some(&bytes),
    );
    assert_eq!(r.status, 201, "PUT tampered manifest: {}", r.text());
    let r = http_request(
        port,
        "DELETE",
        &format!("/v2/{repo}/manifests/{genuine}"),
        &[],
        None,
    );
    assert_eq!(
        r.status / 100,
        2,
        "DELETE the genuine signature: {}",
        r.text()
    );
}

/// A monolithic blob upload (POST, then PUT with the bytes).
fn put_blob(port: u16, repo: &str, bytes: &[u8], digest: &str) {
    let r = http_request(
        port,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Some(&[]),
    );
    assert_eq!(r.status, 202, "POST upload: {}", r.text());
    let location = r
        .headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.clone())
        .unwrap();
    let path = location
        .split_once("://")
        .map(|(_, rest)| &rest[rest.find('/').unwrap()..])
        .unwrap_or(&location);
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = http_request(
        port,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        Some(bytes),
    );
    assert_eq!(r.status, 201, "PUT blob: {}", r.text());
}

#[test]
fn a_signed_layout_lists_its_signatures_and_an_unsigned_one_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, plain) = (dir.path().join("signed.tar"), dir.path().join("plain.tar"));
    let (args, public) = key_args("plain");
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let out =
        |p: &Path, sign: &str| format!("type=oci,dest={},source-date-epoch=0{sign}", p.display());
    let (o, _) =
        registry_support::export_example(&out(&signed, ",oxport.sign=release"), &extra, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same keys given, none selected: the tar has no signatures.
    let (o, _) = registry_support::export_example(&out(&plain, ""), &extra, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (si, pi) = (tar_index(&signed), tar_index(&plain));
    let (sm, pm) = (
        si["manifests"].as_array().unwrap(),
        pi["manifests"].as_array().unwrap(),
    );
    assert_eq!(pm.len(), 1, "unsigned: the root alone");
    assert_eq!(
        sm[0]["digest"], pm[0]["digest"],
        "signing leaves the image as it was"
    );
    // The index, and each platform's SBOM and provenance.
    assert_eq!(sm.len(), 1 + 5);
    for e in &sm[1..] {
        assert_eq!(
            e["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
    }
    let verify = |key: &Path| {
        registry_support::oxport(
            &[
                "verify",
                &format!("oci-archive:{}", signed.display()),
                "--key",
                key.to_str().unwrap(),
            ],
            &[],
        )
    };
    assert!(verify(&public).status.success());
    assert!(!verify(&keys().join("cosign.pub")).status.success());
    let o = registry_support::oxport(
        &[
            "verify",
            &format!("oci-archive:{}", plain.display()),
            "--key",
            public.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success(), "an unsigned tar does not verify");
}

#[test]
fn oxport_sign_signs_existing_images_in_registries_and_layouts() {
    let Some((bin, plain, referrers)) = cosign_and_registries() else {
        return;
    };
    let k = keys();
    let sign_with = |image: &str, flags: &[&str]| {
        let key = k.join("cosign.key");
        let password = k.join("cosign.password");
        let mut args = vec!["sign", "--insecure", image, "--key", key.to_str().unwrap()];
        args.extend(["--key-password-file", password.to_str().unwrap()]);
        args.extend(flags);
        let o = registry_support::oxport(&args, &[]);
        assert!(
            o.status.success(),
            "oxport sign {image}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let sign = |image: &str| sign_with(image, &[]);
    // The index and four statements; with --recursive the two platforms too.
    for (port, recursive, count) in [(plain.port, false, 5), (referrers.port, true, 7)] {
        let host = format!("127.0.0.1:{port}");
        push(&host, "later", "");
        let flags: &[&str] = if recursive { &["--recursive"] } else { &[] };
        let said = sign_with(&format!("docker://{host}/later:1"), flags);
        let want = format!("{count} signature(s) attached");
        assert!(said.contains(&want), "{said}");
        check_signed(&bin, port, "later", "cosign", recursive);
    }

    // A layout directory: its index.json gains the signatures.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let (o, _) = registry_support::export_example(
        &format!("type=oci,tar=false,dest={}", layout.display()),
        &[],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image = format!("oci:{}", layout.display());
    sign(&image);
    let o = registry_support::oxport(
        &[
            "verify",
            &image,
            "--key",
            k.join("cosign.pub").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        o.status.success(),
        "oxport verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = registry_support::oxport(&["inspect", &image], &[]);
    assert!(
        o.status.success(),
        "the signed layout inspects clean: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}
