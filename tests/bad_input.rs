//! The bad-input corpus: every case goes to a real `oxport serve` over a unix
//! socket and must come back with the right gRPC code, a message, a
//! `google.rpc.BadRequest` field violation naming the offending attribute or
//! field, and a server that still answers health afterwards.

mod grpc_support;

use grpc_support::corpus::{
    attrs, check, export_error, health, intoto, layer_edit, meta, upload_base, with_attestation,
    Base,
};
use grpc_support::{digest_of, ServerProc};
use oxport::proto::{self, exporter_client::ExporterClient};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// One export case: request, code, field the violation must name, text the message must hold.
struct Case {
    name: &'static str,
    req: proto::ExportRequest,
    code: Code,
    field: &'static str,
    text: &'static str,
}

fn export_cases(b: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name, req, code, field, text| {
        cases.push(Case {
            name,
            req,
            code,
            field,
            text,
        })
    };
    let with = |kv: &[(&str, &str)]| {
        let mut r = b.single();
        attrs(&mut r, kv);
        r
    };
    let bool_text = "non-bool value specified for";
    add(
        "bool oci-artifact",
        with(&[("oci-artifact", "yes")]),
        Code::InvalidArgument,
        "oci-artifact",
        bool_text,
    );
    add(
        "bool oci-mediatypes",
        with(&[("oci-mediatypes", "nope")]),
        Code::InvalidArgument,
        "oci-mediatypes",
        bool_text,
    );
    add(
        "bool rewrite-timestamp",
        with(&[("rewrite-timestamp", "maybe")]),
        Code::InvalidArgument,
        "rewrite-timestamp",
        bool_text,
    );
    add(
        "bool force-compression",
        with(&[("force-compression", "maybe")]),
        Code::InvalidArgument,
        "force-compression",
        "non-bool value maybe specified for force-compression",
    );
    add(
        "bool tar",
        with(&[("tar", "x")]),
        Code::InvalidArgument,
        "tar",
        bool_text,
    );
    add(
        "bool attestation-inline",
        with(&[("attestation-inline", "sometimes")]),
        Code::InvalidArgument,
        "attestation-inline",
        bool_text,
    );
    add(
        "compression brotli",
        with(&[("compression", "brotli")]),
        Code::InvalidArgument,
        "compression",
        "unsupported compression type brotli",
    );
    add(
        "compression-level",
        with(&[("compression-level", "high")]),
        Code::InvalidArgument,
        "compression-level",
        "non-integer value high",
    );
    add(
        "source-date-epoch",
        with(&[("source-date-epoch", "abc")]),
        Code::InvalidArgument,
        "source-date-epoch",
        "invalid source-date-epoch",
    );
    add(
        "annotation kind",
        with(&[("annotation-foo.k", "v")]),
        Code::InvalidArgument,
        "annotation-foo.k",
        "unrecognized annotation type foo",
    );
    add(
        "annotation platform syntax",
        with(&[("annotation[linux//arm64].k", "v")]),
        Code::InvalidArgument,
        "annotation[linux//arm64].k",
        "invalid platform",
    );
    let huge = "x".repeat(70 << 10);
    add(
        "annotation too large",
        with(&[("annotation.big", huge.as_str())]),
        Code::ResourceExhausted,
        "annotation.big",
        "limit",
    );
    add(
        "artifact vs dockermt",
        with(&[("oci-artifact", "true"), ("oci-mediatypes", "false")]),
        Code::FailedPrecondition,
        "oci-artifact",
        "conflicts with \"oci-mediatypes=false\"",
    );
    add(
        "estargz vs dockermt",
        with(&[("compression", "estargz"), ("oci-mediatypes", "false")]),
        Code::FailedPrecondition,
        "compression",
        "compression=estargz",
    );
    add(
        "estargz",
        with(&[("compression", "estargz")]),
        Code::InvalidArgument,
        "compression",
        "estargz",
    );
    add(
        "index annotation on single",
        with(&[("annotation-index.k", "v")]),
        Code::FailedPrecondition,
        "annotation-index",
        "index annotations not supported for single platform export",
    );
    add(
        "referrers-fallback value",
        with(&[("referrers-fallback", "sometimes")]),
        Code::InvalidArgument,
        "referrers-fallback",
        "referrers-fallback",
    );
    add(
        "attestations-in-index legacy",
        with(&[
            ("attestations-in-index", "false"),
            ("oci-artifact", "false"),
        ]),
        Code::FailedPrecondition,
        "attestations-in-index",
        "requires",
    );
    add(
        "image name uppercase",
        with(&[("name", "Example/App")]),
        Code::InvalidArgument,
        "name",
        "invalid reference format",
    );
    add(
        "image tag invalid",
        with(&[("name", "example.com/app:bad tag!")]),
        Code::InvalidArgument,
        "name",
        "invalid reference format",
    );
    add(
        "image name traversal",
        with(&[("name", "example.com/../etc:1")]),
        Code::InvalidArgument,
        "name",
        "invalid reference format",
    );
    let mut r = b.single();
    r.exporter = "zip".into();
    add(
        "exporter type",
        r,
        Code::InvalidArgument,
        "exporter",
        "unsupported exporter type",
    );
    let mut r = b.map();
    attrs(
        &mut r,
        &[("exporter", "oci"), ("annotation[linux/s390x].k", "v")],
    );
    add(
        "annotation for absent platform",
        r,
        Code::InvalidArgument,
        "annotation",
        "no platform linux/s390x found in source",
    );
    let mut r = b.single();
    r.exporter = "docker".into();
    let mut r = b.map();
    r.exporter = "docker".into();
    add(
        "docker with a map",
        r,
        Code::FailedPrecondition,
        "refs",
        "docker exporter does not currently support exporting manifest lists",
    );

    // The build result.
    add(
        "digest uppercase",
        layer_edit(b.single(), |l| l.digest = l.digest.to_uppercase()),
        Code::InvalidArgument,
        "refs[\"\"][0].digest",
        "digest",
    );
    add(
        "digest short",
        layer_edit(b.single(), |l| l.digest = "sha256:abc".into()),
        Code::InvalidArgument,
        "refs[\"\"][0].digest",
        "digest",
    );
    add(
        "digest algorithm",
        layer_edit(b.single(), |l| {
            l.digest = format!("sha512:{}", "a".repeat(128))
        }),
        Code::InvalidArgument,
        "refs[\"\"][0].digest",
        "digest",
    );
    add(
        "diffID invalid",
        layer_edit(b.single(), |l| l.diff_id = "md5:00".into()),
        Code::InvalidArgument,
        "refs[\"\"][0].diffID",
        "",
    );
    add(
        "size negative",
        layer_edit(b.single(), |l| l.size = -1),
        Code::InvalidArgument,
        "refs[\"\"][0].size",
        "",
    );
    add(
        "size mismatch",
        layer_edit(b.single(), |l| l.size += 1),
        Code::InvalidArgument,
        "refs[\"\"][0].size",
        "stored blob",
    );
    add(
        "blob not uploaded",
        layer_edit(b.single(), |l| l.digest = digest_of(b"never uploaded")),
        Code::NotFound,
        "refs[\"\"][0].digest",
        "not found",
    );
    add(
        "media type",
        layer_edit(b.single(), |l| l.media_type = "application/x-rar".into()),
        Code::InvalidArgument,
        "refs[\"\"][0].mediaType",
        "unsupported layer media type",
    );
    add(
        "created time",
        layer_edit(b.single(), |l| l.created = "yesterday".into()),
        Code::InvalidArgument,
        "refs[\"\"][0].created",
        "RFC 3339",
    );
    let mut r = b.single();
    r.result.as_mut().unwrap().refs.clear();
    add("no refs", r, Code::InvalidArgument, "refs", "no refs");
    let mut r = b.map();
    r.result.as_mut().unwrap().metadata.clear();
    add(
        "platforms missing",
        r,
        Code::InvalidArgument,
        "metadata[\"refs.platforms\"]",
        "missing platforms mapping",
    );
    add(
        "platforms malformed",
        meta(b.map(), "refs.platforms", b"{\"Platforms\":["),
        Code::InvalidArgument,
        "metadata[\"refs.platforms\"]",
        "failed to parse platforms",
    );
    add("platforms count", meta(b.map(), "refs.platforms", br#"{"Platforms":[{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}}]}"#), Code::InvalidArgument, "metadata[\"refs.platforms\"]", "number of platforms does not match");
    add("platforms unknown id", meta(b.map(), "refs.platforms", br#"{"Platforms":[{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}},{"ID":"linux/s390x","Platform":{"architecture":"s390x","os":"linux"}}]}"#), Code::InvalidArgument, "metadata[\"refs.platforms\"]", "failed to find ref for ID linux/s390x");
    add("platforms duplicate id", meta(b.map(), "refs.platforms", br#"{"Platforms":[{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}},{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}}]}"#), Code::InvalidArgument, "metadata[\"refs.platforms\"]", "duplicate platform id");
    add(
        "config truncated",
        meta(
            b.map(),
            "containerimage.config/linux/amd64",
            b"{\"architecture\": \"amd64\", \"os\":",
        ),
        Code::InvalidArgument,
        "metadata",
        "unexpected end of JSON input",
    );
    add(
        "config missing architecture",
        meta(
            b.map(),
            "containerimage.config/linux/amd64",
            br#"{"os":"linux"}"#,
        ),
        Code::InvalidArgument,
        "metadata",
        "missing architecture",
    );
    add(
        "config os without architecture",
        meta(b.single(), "containerimage.config", br#"{"os":"linux"}"#),
        Code::InvalidArgument,
        "metadata",
        "os and architecture must be specified together",
    );
    let deep = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"x\":{}1{}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    add(
        "config nested too deep",
        meta(b.single(), "containerimage.config", deep.as_bytes()),
        Code::ResourceExhausted,
        "metadata[\"containerimage.config\"]",
        "--max-json-depth",
    );
    add(
        "frontend epoch",
        meta(b.single(), "source.date.epoch", b"xyz"),
        Code::InvalidArgument,
        "metadata[\"source.date.epoch\"]",
        "invalid SOURCE_DATE_EPOCH from frontend",
    );

    // Attestations.
    let att = |a| with_attestation(b.single(), "linux/amd64", a);
    add(
        "provenance from frontend",
        att(intoto("https://slsa.dev/provenance/v1", b"{}")),
        Code::InvalidArgument,
        "attestations[\"linux/amd64\"][0].origin",
        "frontend may not set provenance attestations",
    );
    add(
        "predicate not JSON",
        att(intoto("https://example.com/p", b"{not json")),
        Code::InvalidArgument,
        "attestations[\"linux/amd64\"][0].content",
        "not valid JSON",
    );
    add(
        "attestation without ref",
        with_attestation(
            b.single(),
            "linux/s390x",
            intoto("https://example.com/p", b"{}"),
        ),
        Code::InvalidArgument,
        "attestations[\"linux/s390x\"]",
        "no ref",
    );
    let mut unspecified = intoto("https://example.com/p", b"{}");
    unspecified.kind = 0;
    add(
        "attestation kind unspecified",
        att(unspecified),
        Code::InvalidArgument,
        "attestations[\"linux/amd64\"][0].kind",
        "",
    );
    let bundle = |name: &str, content: &[u8], required: &str| proto::Attestation {
        kind: proto::attestation::Kind::Bundle as i32,
        path: "/bundle".into(),
        bundle: vec![proto::BundleFile {
            name: name.into(),
            content: content.to_vec(),
        }],
        predicate_type: required.into(),
        ..Default::default()
    };
    add(
        "bundle name traversal",
        att(bundle("../escape.json", b"{}", "")),
        Code::InvalidArgument,
        "attestations[\"linux/amd64\"][0].bundle",
        "invalid bundle file name",
    );
    add("bundle predicate mismatch", att(bundle("a.json", br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"a","subject":[],"predicate":{}}"#, "b")), Code::InvalidArgument, "attestations[\"linux/amd64\"][0].bundle", "does not match required predicate type b");
    add(
        "bundle entry not an object",
        att(bundle("a.json", b"[1,2]", "")),
        Code::InvalidArgument,
        "attestations[\"linux/amd64\"][0].bundle",
        "not a JSON object",
    );
    let big = format!("{{\"blob\":\"{}\"}}", "a".repeat(41 << 20));
    add(
        "statement over 40 MiB",
        att(intoto("https://example.com/p", big.as_bytes())),
        Code::ResourceExhausted,
        "attestations[\"linux/amd64\"][0]",
        "exceeds the limit",
    );
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus() {
    let server = ServerProc::unix();
    let (base, channel) = upload_base(&server).await;
    let mut raw = ExporterClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(128 << 20);

    // The base requests themselves are good: a corpus of failures means nothing otherwise.
    assert!(
        export_error(&mut raw, base.single()).await.is_none(),
        "the base single request must export"
    );
    assert!(
        export_error(&mut raw, base.map()).await.is_none(),
        "the base map request must export"
    );

    let mut failures = Vec::new();
    let mut count = 0;
    for c in export_cases(&base) {
        count += 1;
        let status = export_error(&mut raw, c.req).await;
        if let Err(e) = check(c.name, status, c.code, c.field, c.text) {
            failures.push(e);
        }
        if health(channel.clone()).await != ServingStatus::Serving {
            failures.push(format!("{}: health not SERVING afterwards", c.name));
        }
    }

    // The content API.
    let write = |digest: String, size: i64, offset: i64, data: Vec<u8>| proto::WriteBlobRequest {
        digest,
        size,
        offset,
        data: data.into(),
        ..Default::default()
    };
    let content_cases: Vec<(&str, proto::WriteBlobRequest, Code, &str, &str)> = vec![
        (
            "upload wrong digest",
            write(digest_of(b"other"), 5, 0, b"hello".to_vec()),
            Code::InvalidArgument,
            "digest",
            "digest",
        ),
        (
            "upload larger than declared",
            write(digest_of(b"hello"), 3, 0, b"hello".to_vec()),
            Code::InvalidArgument,
            "data",
            "more data than its size",
        ),
        (
            "upload bad offset",
            write(digest_of(b"hello!"), 6, 3, b"lo!".to_vec()),
            Code::FailedPrecondition,
            "offset",
            "",
        ),
        (
            "upload bad digest syntax",
            write("sha256:XYZ".into(), 1, 0, b"x".to_vec()),
            Code::InvalidArgument,
            "digest",
            "",
        ),
        (
            "upload negative size",
            write(digest_of(b"x"), -1, 0, b"x".to_vec()),
            Code::InvalidArgument,
            "size",
            "",
        ),
    ];
    for (name, req, code, field, text) in content_cases {
        count += 1;
        let status = raw.write_blob(tokio_stream::iter(vec![req])).await.err();
        if let Err(e) = check(name, status, code, field, text) {
            failures.push(e);
        }
        if health(channel.clone()).await != ServingStatus::Serving {
            failures.push(format!("{name}: health not SERVING afterwards"));
        }
    }
    count += 1;
    let status = raw
        .missing_blobs(proto::MissingBlobsRequest {
            digests: vec![base.digest.clone(), "sha256:short".into()],
        })
        .await
        .err();
    if let Err(e) = check(
        "missing-blobs bad digest",
        status,
        Code::InvalidArgument,
        "digests[1]",
        "",
    ) {
        failures.push(e);
    }

    eprintln!(
        "bad input: {} passed, {} failed",
        count - failures.len(),
        failures.len()
    );
    assert!(count >= 40, "the corpus has {count} cases, fewer than 40");
    assert!(
        failures.is_empty(),
        "bad-input cases that failed:\n{}",
        failures.join("\n")
    );
}
