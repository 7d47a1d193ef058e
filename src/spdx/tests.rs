//! Byte-exact expectations: the core SBOM of the recorded daemon fixtures,
//! and documents whose expected bytes were produced by the Go library
//! BuildKit uses (see tests/spdx-oracle for the full differential test).

use super::*;

const FIXTURE: &str = "e2e_mp_sbom_prov_art";

fn fixture_file(rel: &str) -> Vec<u8> {
    crate::testdata::daemon_fixture(FIXTURE, rel)
}

/// The scanner's SPDX document: the predicate of the bundle statement.
fn scanner_document() -> String {
    let stmt = fixture_file("files/linux_amd64-0/sbom.spdx.json");
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&stmt).unwrap();
    serde_json::to_string(&v["predicate"]).unwrap()
}

#[test]
fn fixture_document_round_trips_through_the_go_types() {
    // BuildKit's output for this document, less what the supplement adds
    // (the layerID comments and the buildkit creator).
    let want = concat!(
        r#"{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","#,
        r#""name":"e2e-scan \u003c\u0026\u003e","documentNamespace":"https://example.com/e2e/scan","#,
        r#""creationInfo":{"creators":["Tool: e2e-busybox-scanner"],"created":"2025-06-01T00:00:00Z"},"#,
        r#""packages":[{"name":"e2e-pkg","SPDXID":"SPDXRef-Package-e2e","versionInfo":"1.0","#,
        r#""downloadLocation":"NOASSERTION","filesAnalyzed":false,"licenseConcluded":"NOASSERTION","#,
        r#""copyrightText":"NOASSERTION"}],"files":[{"fileName":"/not/in/image","SPDXID":"SPDXRef-File-missing","#,
        r#""checksums":[{"algorithm":"SHA256","checksumValue":"0000000000000000000000000000000000000000000000000000000000000000"}],"#,
        r#""copyrightText":""},{"fileName":"/a.txt","SPDXID":"SPDXRef-File-commented","#,
        r#""checksums":[{"algorithm":"SHA256","checksumValue":"1111111111111111111111111111111111111111111111111111111111111111"}],"#,
        r#""copyrightText":"","comment":"already commented"}"#,
    );
    let doc = Document::decode(scanner_document().as_bytes()).unwrap();
    let got = doc.encode().unwrap();
    assert!(got.starts_with(want), "got {got}");
}

#[test]
fn relationships_come_from_describes_and_has_files() {
    let input = br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT",
        "documentDescribes":["SPDXRef-a","NOASSERTION"],
        "packages":[{"name":"a","SPDXID":"SPDXRef-a","hasFiles":["SPDXRef-f"]}],
        "relationships":[null,{"spdxElementId":"SPDXRef-f","relatedSpdxElement":"SPDXRef-a","relationshipType":"CONTAINED_BY"}]}"#;
    let got = Document::decode(input).unwrap().encode().unwrap();
    assert_eq!(
        got,
        concat!(
            r#"{"spdxVersion":"SPDX-2.3","dataLicense":"","SPDXID":"SPDXRef-DOCUMENT","name":"","#,
            r#""documentNamespace":"","creationInfo":null,"packages":[{"name":"a","SPDXID":"SPDXRef-a","#,
            r#""downloadLocation":"","filesAnalyzed":true}],"relationships":[{"spdxElementId":"SPDXRef-f","#,
            r#""relatedSpdxElement":"SPDXRef-a","relationshipType":"CONTAINED_BY"},{"spdxElementId":"SPDXRef-DOCUMENT","#,
            r#""relatedSpdxElement":"SPDXRef-a","relationshipType":"DESCRIBES"},{"spdxElementId":"SPDXRef-DOCUMENT","#,
            r#""relatedSpdxElement":"NOASSERTION","relationshipType":"DESCRIBES"}]}"#
        )
    );
}

#[test]
fn files_analyzed_defaults_to_true_and_checksums_to_null() {
    let input = br#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"b","SPDXID":"SPDXRef-b","filesAnalyzed":null}],
        "files":[{"fileName":"x","SPDXID":"SPDXRef-x"}]}"#;
    let got = Document::decode(input).unwrap().encode().unwrap();
    assert!(got.contains(r#""filesAnalyzed":true"#), "{got}");
    assert!(
        got.contains(r#""checksums":null,"copyrightText":"""#),
        "{got}"
    );
}

#[test]
fn what_is_not_spdx_2_3_does_not_decode() {
    for doc in [
        &br#"{"spdxVersion":"SPDX-2.2","name":"x"}"#[..],
        br#"{"spdxVersion":2.3}"#,
        br#"["spdxVersion"]"#,
        br#"{"spdxVersion":"SPDX-2.3","#,
        br#"{"spdxVersion":"SPDX-2.3","name":5}"#,
        br#"{"spdxVersion":"SPDX-2.3","SPDXID":"DOCUMENT"}"#,
        br#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"a","SPDXID":"SPDXRef-a","filesAnalyzed":"yes"}]}"#,
        br#"{"spdxVersion":"SPDX-2.3","packages":[null]}"#,
        b"\xff",
    ] {
        assert!(
            Document::decode(doc).is_none(),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn unencodable_documents_fail_with_gos_message() {
    let mut doc = Document::decode(br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    doc.add_creator(Creator::new("Tool", ""));
    assert_eq!(
        doc.encode().unwrap_err().0,
        "json: error calling MarshalJSON for type common.Creator: unexpected end of JSON input"
    );
}
