use super::*;

#[test]
fn go_numbers() {
    let n = |s: &str| go_value(&serde_json::from_str(s).unwrap());
    assert_eq!(n("1.50"), "1.5");
    assert_eq!(n("1e3"), "1000");
    assert_eq!(n("1e21"), "1e+21");
    assert_eq!(n("0.0000001"), "1e-7");
    assert_eq!(n(r#"{"b":1,"a":"<"}"#), r#"{"a":"\u003c","b":1}"#);
}

fn platform() -> Platform {
    Platform::new("linux", "amd64")
}

fn intoto(path: &str, pt: &str, content: &str) -> Attestation {
    Attestation {
        kind: AttestationKind::InToto,
        path: path.into(),
        content: AttestationContent::InToto(content.as_bytes().to_vec()),
        predicate_type: pt.into(),
        subjects: vec![],
        metadata: BTreeMap::new(),
        origin: Origin::Daemon,
    }
}

fn sbom_bundle() -> Attestation {
    let entry = |pt: &str, subject: &str| {
        format!(r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"{pt}","subject":{subject},"predicate":{{"spdxVersion":"SPDX-2.3"}}}}"#)
            .into_bytes()
    };
    Attestation {
        kind: AttestationKind::Bundle,
        path: String::new(),
        content: AttestationContent::Bundle(vec![
            ("sbom.spdx.json".into(), entry(sbom::PREDICATE_SPDX, "[]")),
            (
                "extra.spdx.json".into(),
                entry(
                    sbom::PREDICATE_SPDX,
                    r#"[{"name":"","digest":{"sha256":"ab"}}]"#,
                ),
            ),
        ]),
        predicate_type: String::new(),
        subjects: vec![],
        metadata: BTreeMap::from([(sbom::SBOM_CORE.into(), "sbom".into())]),
        origin: Origin::Frontend,
    }
}

#[test]
fn the_core_sbom_goes_first_and_bundle_statements_get_default_subjects() {
    let prov = intoto("provenance.json", "https://slsa.dev/provenance/v1", "{}");
    let bundle = sbom_bundle();
    let names = crate::reference::parse_names("example.com/a:1").unwrap();
    let manifest = Descriptor::of(oci::MT_OCI_MANIFEST, b"{}");
    let files = LayerFiles::default();
    let cx = StatementContext {
        names: &names,
        platform: &platform(),
        manifest: &manifest,
        layer_files: Some(&files),
        builder_version: "v9",
    };
    let st = statements(&[&prov, &bundle], &cx, "attestations", 1 << 20).unwrap();
    let text: Vec<String> = st
        .iter()
        .map(|s| String::from_utf8(s.bytes.clone()).unwrap())
        .collect();
    let purl = format!(
        r#"{{"name":"pkg:docker/example.com/a@1?platform=linux%2Famd64","digest":{{"sha256":"{}"}}}}"#,
        &manifest.digest[7..]
    );
    // The core SBOM first, supplemented, with the default subject.
    assert!(
        text[0].contains(&format!(r#""subject":[{purl}]"#)),
        "{}",
        text[0]
    );
    assert!(text[0].contains("Tool: buildkit-v9"), "{}", text[0]);
    // Then the frontend's order: provenance, then the other bundle entry,
    // whose own subject passes through and which is not supplemented.
    assert!(text[1].contains("slsa.dev/provenance"), "{}", text[1]);
    assert!(
        text[2].contains(r#""subject":[{"name":"_","digest":{"sha256":"ab"}}]"#),
        "{}",
        text[2]
    );
    assert!(!text[2].contains("buildkit-v9"), "{}", text[2]);
    // A platform without layers (no ref) is not supplemented.
    let cx = StatementContext {
        layer_files: None,
        ..cx
    };
    let st = statements(&[&bundle], &cx, "attestations", 1 << 20).unwrap();
    assert!(!String::from_utf8_lossy(&st[0].bytes).contains("buildkit-v9"));
}

#[test]
fn layer_files_are_wanted_only_for_a_core_spdx_sbom() {
    let prov = intoto("provenance.json", "https://slsa.dev/provenance/v1", "{}");
    assert!(!wants_layer_files(&[&prov]));
    assert!(wants_layer_files(&[&prov, &sbom_bundle()]));
    let mut not_core = sbom_bundle();
    not_core.metadata.clear();
    assert!(!wants_layer_files(&[&not_core]));
    let mut core_intoto = intoto("sbom.spdx.json", sbom::PREDICATE_SPDX, "{}");
    core_intoto.metadata = sbom_bundle().metadata;
    assert!(wants_layer_files(&[&core_intoto]));
    core_intoto.predicate_type = "https://cyclonedx.org/bom".into();
    assert!(!wants_layer_files(&[&core_intoto]));
}

#[test]
fn bundle_predicate_type_must_match() {
    let st = br#"{"_type":"x","predicateType":"a","subject":[],"predicate":null}"#;
    assert_eq!(
        bundle_entry(st, "b", 1 << 20).err().unwrap().message,
        "bundle entry a does not match required predicate type b"
    );
    let e = bundle_entry(st, "", 1 << 20).unwrap();
    assert_eq!(
        (e.predicate_type.as_str(), e.predicate.as_str()),
        ("a", "null")
    );
    assert!(e.subjects.is_empty());
}
