use super::*;

fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(exporter: &str, kv: &[(&str, &str)]) -> ExportError {
    ExportOptions::parse(exporter, &attrs(kv), 0).unwrap_err()
}

#[test]
fn go_bools() {
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_go_bool(t), Some(true));
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_go_bool(f), Some(false));
    }
    assert_eq!(parse_go_bool("yes"), None);
    assert_eq!(parse_go_bool("tRUE"), None);
}

#[test]
fn error_texts_are_buildkits() {
    let e = err("oci", &[("oci-artifact", "yes")]);
    assert_eq!(
        e.message,
        r#"non-bool value specified for oci-artifact: strconv.ParseBool: parsing "yes": invalid syntax"#
    );
    assert_eq!(e.field.as_deref(), Some("oci-artifact"));
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert_eq!(
        err("oci", &[("force-compression", "maybe")]).message,
        r#"non-bool value maybe specified for force-compression: strconv.ParseBool: parsing "maybe": invalid syntax"#
    );
    assert_eq!(
        err("oci", &[("source-date-epoch", "abc")]).message,
        r#"invalid source-date-epoch: strconv.ParseInt: parsing "abc": invalid syntax: strconv.ParseInt: parsing "abc": invalid syntax"#
    );
    assert_eq!(
        err("oci", &[("compression-level", "high")]).message,
        r#"non-integer value high specified for compression-level: strconv.ParseInt: parsing "high": invalid syntax"#
    );
    assert_eq!(
        err("oci", &[("compression", "brotli")]).message,
        "unsupported compression type brotli"
    );
    let c = err(
        "oci",
        &[("oci-artifact", "true"), ("oci-mediatypes", "false")],
    );
    assert_eq!(
        c.message,
        r#"exporter option "oci-artifact=true" conflicts with "oci-mediatypes=false""#
    );
    assert_eq!(c.kind, ErrorKind::FailedPrecondition);
    assert_eq!(
        err(
            "oci",
            &[("compression", "estargz"), ("oci-mediatypes", "false")]
        )
        .message,
        r#"exporter option "compression=estargz" conflicts with "oci-mediatypes=false""#
    );
    assert_eq!(
        err("oci", &[("tar", "x")]).message,
        r#"non-bool value specified for tar: strconv.ParseBool: parsing "x": invalid syntax"#
    );
}

#[test]
fn defaults_follow_compatibility_version() {
    let mut docker20 = ExportOptions::parse("docker", &attrs(&[]), 20).unwrap();
    docker20.finalize(false);
    assert!(!docker20.oci_types());
    assert!(!docker20.oci_artifact());
    let mut docker20_att = ExportOptions::parse("docker", &attrs(&[]), 20).unwrap();
    docker20_att.finalize(true);
    assert!(docker20_att.oci_types());
    assert!(!docker20_att.oci_artifact());
    let mut oci = ExportOptions::parse("oci", &attrs(&[]), 0).unwrap();
    oci.finalize(true);
    assert!(oci.oci_types() && oci.oci_artifact());
    let mut oci10 = ExportOptions::parse("oci", &attrs(&[]), 10).unwrap();
    oci10.finalize(true);
    assert!(oci10.oci_types() && !oci10.oci_artifact());
}

#[test]
fn oxport_extensions() {
    let mut o = ExportOptions::parse(
        "image",
        &attrs(&[
            ("attestations-in-index", "false"),
            ("referrers-fallback", "never"),
        ]),
        0,
    )
    .unwrap();
    assert_eq!(o.referrers_fallback, ReferrersFallback::Never);
    o.finalize(true);
    assert!(o.check_extensions().is_ok());
    let mut legacy = ExportOptions::parse(
        "oci",
        &attrs(&[
            ("attestations-in-index", "false"),
            ("oci-artifact", "false"),
        ]),
        0,
    )
    .unwrap();
    legacy.finalize(true);
    assert_eq!(
        legacy.check_extensions().unwrap_err().kind,
        ErrorKind::FailedPrecondition
    );
    assert!(err("image", &[("referrers-fallback", "sometimes")])
        .message
        .contains("referrers-fallback"));
}

#[test]
fn unknown_keys_become_metadata() {
    let o = ExportOptions::parse("oci", &attrs(&[("containerimage.config", "{}")]), 0).unwrap();
    assert_eq!(o.extra_metadata["containerimage.config"], "{}");
}

#[test]
fn the_sign_format_is_parsed_and_needs_a_key() {
    let o = ExportOptions::parse("image", &attrs(&[("oxport.sign", "k")]), 0).unwrap();
    assert_eq!(o.sign_format(), SignFormat::Bundle);
    assert_eq!(o.effective()["oxport.sign-format"], "bundle");
    for (v, want) in [
        ("legacy", SignFormat::Legacy),
        ("both", SignFormat::Both),
        ("bundle", SignFormat::Bundle),
    ] {
        let a = attrs(&[("oxport.sign", "k"), ("oxport.sign-format", v)]);
        assert_eq!(
            ExportOptions::parse("oci", &a, 0).unwrap().sign_format(),
            want
        );
    }
    let bad = attrs(&[("oxport.sign", "k"), ("oxport.sign-format", "sig")]);
    let err = ExportOptions::parse("image", &bad, 0).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("oxport.sign-format"));
    assert!(
        err.message.contains("expected bundle, legacy or both"),
        "{err}"
    );
    let keyless = attrs(&[("oxport.sign-format", "both")]);
    let err = ExportOptions::parse("image", &keyless, 0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("oxport.sign=NAME"), "{err}");
}

#[test]
fn platform_manifests_are_signed_only_when_asked_and_with_a_key() {
    let o = ExportOptions::parse("image", &attrs(&[("oxport.sign", "k")]), 0).unwrap();
    assert!(!o.sign_recursive());
    assert_eq!(o.effective()["oxport.sign-recursive"], "false");
    for (v, want) in [("", true), ("true", true), ("1", true), ("false", false)] {
        let a = attrs(&[("oxport.sign", "k"), ("oxport.sign-recursive", v)]);
        let o = ExportOptions::parse("oci", &a, 0).unwrap();
        assert_eq!(o.sign_recursive(), want, "{v:?}");
    }
    let bad = attrs(&[("oxport.sign", "k"), ("oxport.sign-recursive", "yes")]);
    let err = ExportOptions::parse("image", &bad, 0).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("oxport.sign-recursive"));
    let keyless = attrs(&[("oxport.sign-recursive", "true")]);
    let err = ExportOptions::parse("image", &keyless, 0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(err.field.as_deref(), Some("oxport.sign-recursive"));
    assert!(err.message.contains("oxport.sign=NAME"), "{err}");
}
