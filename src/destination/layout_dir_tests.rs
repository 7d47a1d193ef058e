use super::*;
use serde_json::json;

/// A layout directory with the given index entries and blobs.
fn layout(dir: &Path, entries: &[Value], blobs: &[(&str, &[u8])]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), OCI_LAYOUT).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": entries});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    for (hex, bytes) in blobs {
        fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
    }
}

fn entry(digest: &str, name: Option<&str>) -> Value {
    let mut e = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": format!("sha256:{digest}"), "size": 1});
    if let Some(n) = name {
        e["annotations"] = json!({ ANNOTATION_REF_NAME: n });
    }
    e
}

fn index_of(dir: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    v["manifests"].as_array().unwrap().clone()
}

#[test]
fn destinations_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(check_dest(&d.join("new")).unwrap(), DestKind::Absent);
    fs::create_dir(d.join("empty")).unwrap();
    assert_eq!(check_dest(&d.join("empty")).unwrap(), DestKind::Empty);
    layout(&d.join("layout"), &[], &[]);
    assert_eq!(check_dest(&d.join("layout")).unwrap(), DestKind::Layout);

    fs::create_dir(d.join("home")).unwrap();
    fs::write(d.join("home/notes.txt"), b"mine").unwrap();
    let err = check_dest(&d.join("home")).unwrap_err().to_string();
    assert!(err.contains(&d.join("home").display().to_string()), "{err}");
    assert!(err.contains("not an OCI layout"), "{err}");
    fs::write(d.join("file"), b"x").unwrap();
    let err = check_dest(&d.join("file")).unwrap_err().to_string();
    assert!(err.contains("is not a directory"), "{err}");
    fs::write(
        d.join("layout/oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = check_dest(&d.join("layout")).unwrap_err().to_string();
    assert!(err.contains("1.0.0"), "{err}");
}

#[test]
fn entries_of_the_same_ref_are_replaced_in_place() {
    let old = vec![
        entry("a1", Some("v1")),
        entry("b", Some("v2")),
        entry("u1", None),
        entry("a2", Some("v1")),
        entry("u2", None),
    ];
    let new = vec![entry("c", Some("v1")), entry("u2", None), entry("d", None)];
    let keys: Vec<String> = merge_entries(old, new)
        .iter()
        .map(|e| e["digest"].as_str().unwrap()[7..].to_string())
        .collect();
    assert_eq!(keys, ["c", "b", "u1", "u2", "d"]);
}

#[test]
fn docker_manifests_give_their_tags_to_the_new_images() {
    let old = json!([
        {"Config": "blobs/sha256/c1", "RepoTags": ["a:1", "a:2"], "Layers": []},
        {"Config": "blobs/sha256/c2", "RepoTags": ["b:1"], "Layers": []},
        {"Config": "blobs/sha256/c3", "RepoTags": null, "Layers": []},
        {"Config": "blobs/sha256/c4", "RepoTags": ["d:1"], "Layers": []}
    ]);
    let new = json!([{"Config": "blobs/sha256/c4", "RepoTags": ["a:2", "b:1"], "Layers": []}]);
    let out = merge_docker_manifest(
        &serde_json::to_vec(&old).unwrap(),
        &serde_json::to_vec(&new).unwrap(),
        Path::new("d"),
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out,
        json!([
            {"Config": "blobs/sha256/c1", "RepoTags": ["a:1"], "Layers": []},
            {"Config": "blobs/sha256/c3", "RepoTags": null, "Layers": []},
            {"Config": "blobs/sha256/c4", "RepoTags": ["a:2", "b:1"], "Layers": []}
        ])
    );
}

#[test]
fn a_layout_is_added_to_and_keeps_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    layout(
        &dest,
        &[entry("aa", Some("keep")), entry("bb", Some("v1"))],
        &[("aa", b"old a"), ("bb", b"old b"), ("cc", b"kept")],
    );
    fs::write(dest.join("README"), b"unrelated").unwrap();
    let staged = dir.path().join("staged");
    layout(
        &staged,
        &[entry("dd", Some("v1")), entry("ee", None)],
        &[("cc", b"same"), ("dd", b"new d"), ("ee", b"new e")],
    );
    add_layout(&staged, &dest, &IndexUpdate::Merge).unwrap();
    let digests: Vec<&str> = vec!["sha256:aa", "sha256:dd", "sha256:ee"];
    let got: Vec<Value> = index_of(&dest);
    assert_eq!(
        got.iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect::<Vec<_>>(),
        digests
    );
    assert_eq!(fs::read(dest.join("README")).unwrap(), b"unrelated");
    let blob = |h: &str| fs::read(dest.join("blobs/sha256").join(h)).unwrap();
    assert_eq!(blob("bb"), b"old b", "blobs are never removed");
    assert_eq!(blob("cc"), b"kept", "a blob already there is kept");
    assert_eq!(blob("dd"), b"new d");
    assert!(!staged.exists());
    let names: Vec<String> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "no temporary files left: {names:?}");
}

#[test]
fn a_failure_leaves_the_previous_layout() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    layout(&dest, &[entry("aa", Some("v1"))], &[("aa", b"a")]);
    fs::write(dest.join("index.json"), b"{not json").unwrap();
    let staged = dir.path().join("staged");
    layout(&staged, &[entry("dd", Some("v2"))], &[("dd", b"d")]);
    let err = add_layout(&staged, &dest, &IndexUpdate::Merge).unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");
    assert!(!dest.join("blobs/sha256/dd").exists(), "nothing was added");
    assert_eq!(fs::read(dest.join("index.json")).unwrap(), b"{not json");

    // A replacement refuses an index.json that changed since it was read.
    layout(&dest, &[entry("aa", Some("v1"))], &[("aa", b"a")]);
    let update = IndexUpdate::Replace {
        expect: b"{}".to_vec(),
    };
    let err = add_layout(&staged, &dest, &update).unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    assert_eq!(index_of(&dest).len(), 1);
}

#[test]
fn new_and_empty_directories_get_the_layout_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in [("new", false), ("empty", true)] {
        let dest = dir.path().join(name);
        if make {
            fs::create_dir(&dest).unwrap();
        }
        let staged = dir.path().join(format!("staged-{name}"));
        layout(&staged, &[entry("dd", None)], &[("dd", b"d")]);
        let want = fs::read(staged.join("index.json")).unwrap();
        add_layout(&staged, &dest, &IndexUpdate::Merge).unwrap();
        assert_eq!(fs::read(dest.join("index.json")).unwrap(), want);
        assert_eq!(fs::read(dest.join("oci-layout")).unwrap(), OCI_LAYOUT);
        assert!(!staged.exists());
    }
}
