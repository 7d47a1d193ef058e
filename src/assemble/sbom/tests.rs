use super::*;
use crate::layer::files::names_of;

#[test]
fn paths_clean_as_in_go() {
    for (input, want) in [
        ("", "."),
        ("a//b/./c/..", "a/b"),
        ("/../a", "/a"),
        ("../../x", "../../x"),
        ("a/../..", ".."),
        ("/a/b/", "/a/b"),
        ("/", "/"),
        ("./", "."),
        ("abc/def/../../..", ".."),
    ] {
        assert_eq!(clean(input), want, "clean({input:?})");
    }
    assert_eq!(join("", "sbom.spdx.json"), "sbom.spdx.json");
    assert_eq!(join("/out/", "sbom.spdx.json"), "/out/sbom.spdx.json");
    assert_eq!(base("/out/sbom.spdx.json"), "sbom.spdx.json");
    assert_eq!(base("/"), "/");
    assert_eq!(base(""), ".");
}

fn core(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(SBOM_CORE.to_string(), name.to_string())])
}

#[test]
fn the_core_sbom_is_named_by_metadata() {
    let m = core("sbom");
    assert!(sorts_first("sbom.spdx.json", &m));
    assert!(is_core_spdx(PREDICATE_SPDX, "sbom.spdx.json", &m));
    // Sorting looks at the whole path, the supplement at its base name.
    assert!(!sorts_first("out/sbom.spdx.json", &m));
    assert!(is_core_spdx(PREDICATE_SPDX, "out/sbom.spdx.json", &m));
    assert!(!is_core_spdx(PREDICATE_SPDX, "sbom-extra.spdx.json", &m));
    assert!(!is_core_spdx("https://cyclonedx.org/bom", "sbom.json", &m));
    assert!(!sorts_first("sbom.spdx.json", &BTreeMap::new()));
}

fn layers(l: &[(&str, &[&str])]) -> LayerFiles {
    let owned: Vec<(String, Vec<String>)> = l
        .iter()
        .map(|(d, n)| (d.to_string(), n.iter().map(|s| s.to_string()).collect()))
        .collect();
    LayerFiles::new(owned.iter().map(|(d, n)| (d.clone(), n.iter())))
}

#[test]
fn the_topmost_layer_holding_a_path_wins() {
    let f = layers(&[
        ("sha256:low", &["app/", "app/a", "app/gone", "./dot"]),
        ("sha256:mid", &["app/a", "app/.wh.gone", ".wh..wh..opq"]),
        ("sha256:top", &["other"]),
    ]);
    assert_eq!(f.find("/app/a"), Some("sha256:mid"));
    assert_eq!(f.find("app/a"), Some("sha256:mid"));
    // A deleted file names the layer that created it, not the whiteout.
    assert_eq!(f.find("/app/gone"), Some("sha256:low"));
    assert_eq!(f.find("/app/.wh.gone"), None);
    assert_eq!(f.find("/app"), Some("sha256:low"));
    assert_eq!(f.find("/dot"), Some("sha256:low"));
    assert_eq!(f.find("/not/there"), None);
}

const FIXTURE: &str = "e2e_mp_sbom_prov_art";

fn fixture_file(rel: &str) -> Vec<u8> {
    crate::testdata::daemon_fixture(FIXTURE, rel)
}

/// The core SPDX statement of linux/amd64 that BuildKit wrote, from the
/// fixture's expected archive: its predicate's exact bytes.
fn expected_predicate() -> String {
    let tar = fixture_file("expected.tar");
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut body = String::new();
        if std::io::Read::read_to_string(&mut e, &mut body).is_err() {
            continue;
        }
        if body.contains(r#""predicateType":"https://spdx.dev/Document""#)
            && body.contains("platform=linux%2Famd64")
        {
            let v: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(&body).unwrap();
            return v["predicate"].get().to_string();
        }
    }
    panic!("no SPDX statement for linux/amd64 in {FIXTURE}/expected.tar");
}

fn fixture_layers() -> LayerFiles {
    let case: serde_json::Value = serde_json::from_slice(&fixture_file("case.json")).unwrap();
    let chain = case["refs"]["linux/amd64"].as_array().unwrap();
    let owned: Vec<(String, Vec<String>)> = chain
        .iter()
        .map(|l| {
            let blob = fixture_file(l["blob"].as_str().unwrap());
            let names = names_of(flate2::read::GzDecoder::new(&blob[..])).unwrap();
            (l["digest"].as_str().unwrap().to_string(), names)
        })
        .collect();
    LayerFiles::new(owned.iter().map(|(d, n)| (d.clone(), n.iter())))
}

#[test]
fn fixture_core_sbom_is_supplemented_byte_for_byte() {
    let stmt = fixture_file("files/linux_amd64-0/sbom.spdx.json");
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&stmt).unwrap();
    let content = serde_json::to_vec(&v["predicate"]).unwrap();
    let got = supplement(&content, &fixture_layers(), "v0.0.0+unknown")
        .unwrap()
        .unwrap();
    let want = expected_predicate();
    assert_eq!(String::from_utf8(got).unwrap(), want);
    // The rules the fixture shows: an existing comment stays, a file in no
    // layer gets none, every other file names its layer.
    assert!(want.contains(r#""comment":"already commented""#));
    assert!(want.contains(r#""fileName":"/not/in/image","SPDXID":"SPDXRef-File-missing","checksums":[{"algorithm":"SHA256","checksumValue":"0000000000000000000000000000000000000000000000000000000000000000"}],"copyrightText":""}"#));
}

#[test]
fn the_builder_version_defaults_to_unknown() {
    let doc =
        br#"{"spdxVersion":"SPDX-2.3","creationInfo":{"creators":["Tool: x"],"created":"t"}}"#;
    let got = supplement(doc, &LayerFiles::default(), "")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(got)
        .unwrap()
        .contains(r#""creators":["Tool: x","Tool: buildkit-v0.0.0+unknown"]"#));
    let got = supplement(doc, &LayerFiles::default(), "v0.32.2")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(got)
        .unwrap()
        .contains("Tool: buildkit-v0.32.2"));
}

#[test]
fn files_in_packages_and_whiteouts() {
    let f = layers(&[
        ("sha256:low", &["etc/passwd", "usr/bin/tool"]),
        ("sha256:top", &["etc/.wh.passwd", "usr/bin/tool"]),
    ]);
    let doc = br#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"p","SPDXID":"SPDXRef-p",
        "files":[{"fileName":"/etc/passwd","SPDXID":"SPDXRef-a"},{"fileName":"/usr/bin/tool","SPDXID":"SPDXRef-b"}]}]}"#;
    let got = String::from_utf8(supplement(doc, &f, "v1").unwrap().unwrap()).unwrap();
    assert!(got.contains(r#""SPDXID":"SPDXRef-a","checksums":null,"copyrightText":"","comment":"layerID: sha256:low""#), "{got}");
    assert!(got.contains(r#""SPDXID":"SPDXRef-b","checksums":null,"copyrightText":"","comment":"layerID: sha256:top""#), "{got}");
}

#[test]
fn what_is_not_spdx_is_left_as_it_is() {
    assert_eq!(
        supplement(
            b"{\"bomFormat\":\"CycloneDX\"}",
            &LayerFiles::default(),
            "v1"
        ),
        Ok(None)
    );
    assert_eq!(
        supplement(b"not json", &LayerFiles::default(), "v1"),
        Ok(None)
    );
    assert_eq!(supplement(b"", &LayerFiles::default(), "v1"), Ok(None));
}

#[test]
fn an_unencodable_document_is_an_error() {
    let doc = br#"{"spdxVersion":"SPDX-2.3","creationInfo":{"creators":["Tool:"],"created":"t"}}"#;
    assert_eq!(
        supplement(doc, &LayerFiles::default(), "v1").unwrap_err(),
        "unable to encode spdx: json: error calling MarshalJSON for type common.Creator: unexpected end of JSON input"
    );
}
