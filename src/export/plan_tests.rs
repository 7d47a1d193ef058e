use super::*;
use crate::error::ErrorKind;
use crate::export::fixtures::{request, PLATFORM_MAP, SINGLE};
use crate::export::resolve::resolve;
use crate::limits::Limits;
use crate::model::{AttestationContent, AttestationKind, Origin};

fn plan_of(req: &ExportRequest) -> Result<Plan<'_>> {
    plan(req, resolve(req, &Limits::default())?)
}

fn attestation(predicate_type: &str, inline_only: bool) -> Attestation {
    let mut metadata = BTreeMap::new();
    if inline_only {
        metadata.insert("inline-only".to_string(), "true".to_string());
    }
    Attestation {
        kind: AttestationKind::InToto,
        path: "att.json".into(),
        content: AttestationContent::InToto(b"{}".to_vec()),
        predicate_type: predicate_type.into(),
        subjects: Vec::new(),
        metadata,
        origin: Origin::Daemon,
    }
}

#[test]
fn unknown_attributes_go_over_the_metadata() {
    let mut req = request("oci", &[("my.key", "attr")], SINGLE);
    req.result
        .metadata
        .insert("my.key".into(), b"frontend".to_vec());
    let p = plan_of(&req).unwrap();
    assert_eq!(p.meta["my.key"], b"attr");
}

#[test]
fn the_epoch_comes_from_the_attribute_then_the_metadata() {
    let mut req = request("oci", &[], SINGLE);
    req.result.metadata.insert(KEY_EPOCH.into(), b"20".to_vec());
    let p = plan_of(&req).unwrap();
    assert_eq!(p.global_epoch.map(|t| t.unix), Some(20));
    assert!(p.has_global_epoch);

    req.attrs.insert("source-date-epoch".into(), "10".into());
    let p = plan_of(&req).unwrap();
    assert_eq!(p.global_epoch.map(|t| t.unix), Some(10));

    let mut req = request("oci", &[], PLATFORM_MAP);
    req.result
        .metadata
        .insert(format!("{KEY_EPOCH}/linux/amd64"), b"30".to_vec());
    let p = plan_of(&req).unwrap();
    assert_eq!(p.global_epoch, None);
    assert!(
        !p.has_global_epoch,
        "per-platform keys stay for the layer step"
    );
}

#[test]
fn platforms_keep_the_order_of_refs_platforms() {
    let req = request("oci", &[], &[("linux/arm64", 1), ("linux/amd64", 1)]);
    let p = plan_of(&req).unwrap();
    let ids: Vec<&str> = p.platforms.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["linux/arm64", "linux/amd64"]);
    assert!(p.is_map && p.want_index);
}

#[test]
fn a_single_ref_takes_its_platform_from_the_config() {
    let req = request("oci", &[], SINGLE);
    let p = plan_of(&req).unwrap();
    assert_eq!(p.platforms[0].0, "linux/amd64");
    assert!(!p.is_map && !p.want_index);

    let mut req = request("oci", &[], SINGLE);
    req.result.metadata.insert(
        KEY_CONFIG.into(),
        br#"{"os":"linux","architecture":"arm64"}"#.to_vec(),
    );
    assert_eq!(plan_of(&req).unwrap().platforms[0].0, "linux/arm64");
}

#[test]
fn a_single_ref_drops_only_inline_only_attestations() {
    let mut req = request("oci", &[], SINGLE);
    req.result.attestations.insert(
        "linux/amd64".into(),
        vec![attestation("https://example.com/inline", true)],
    );
    let p = plan_of(&req).unwrap();
    assert!(p.attestations[0].is_empty());
    assert!(!p.want_index);

    req.attrs.insert("attestation-inline".into(), "true".into());
    let p = plan_of(&req).unwrap();
    assert_eq!(p.attestations[0].len(), 1);
    assert!(p.want_index, "attestations need an index");
}

#[test]
fn attestations_need_an_exported_platform() {
    let mut req = request("oci", &[], SINGLE);
    req.result.attestations.insert(
        "linux/s390x".into(),
        vec![attestation("https://example.com/x", false)],
    );
    let err = plan_of(&req).err().unwrap();
    assert_eq!(err.field.as_deref(), Some("attestations[\"linux/s390x\"]"));
    assert!(err.message.contains("(platforms: linux/amd64)"), "{err}");
}

#[test]
fn conflicting_attributes_are_refused_in_order() {
    let mut req = request("oci", &[("oci-mediatypes", "false")], SINGLE);
    req.result.attestations.insert(
        "linux/amd64".into(),
        vec![attestation("https://example.com/x", false)],
    );
    req.attrs
        .insert("annotation.org.example".into(), "v".into());
    let err = plan_of(&req).err().unwrap();
    assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    assert!(err.message.contains("cannot export attestations"), "{err}");

    let req = request("oci", &[("annotation-index.org.example", "v")], SINGLE);
    let err = plan_of(&req).err().unwrap();
    assert_eq!(err.field.as_deref(), Some("annotation-index"));

    let req = request("oci", &[("annotation[linux/s390x].k", "v")], PLATFORM_MAP);
    let err = plan_of(&req).err().unwrap();
    assert!(err.message.contains("no platform linux/s390x"), "{err}");
}

#[test]
fn frontends_may_not_vouch_for_provenance() {
    let mut req = request("oci", &[], PLATFORM_MAP);
    let mut a = attestation("https://slsa.dev/provenance/v1", false);
    a.origin = Origin::Frontend;
    req.result
        .attestations
        .insert("linux/arm64".into(), vec![a]);
    let err = plan_of(&req).err().unwrap();
    assert_eq!(
        err.field.as_deref(),
        Some("attestations[\"linux/arm64\"][0].origin")
    );
}

#[test]
fn names_come_from_the_attribute_or_with_a_star_from_the_metadata() {
    let req = request("oci", &[("name", "a:1,b:2")], SINGLE);
    let names: Vec<String> = plan_of(&req)
        .unwrap()
        .names
        .iter()
        .map(Reference::full)
        .collect();
    assert_eq!(names, ["docker.io/library/a:1", "docker.io/library/b:2"]);

    let mut req = request("oci", &[("name", "*")], SINGLE);
    req.result
        .metadata
        .insert(KEY_IMAGE_NAME.into(), b"example.com/app:v1".to_vec());
    let names: Vec<String> = plan_of(&req)
        .unwrap()
        .names
        .iter()
        .map(Reference::full)
        .collect();
    assert_eq!(names, ["example.com/app:v1"]);
}
