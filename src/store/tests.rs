use super::*;
use bytes::Bytes;

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[test]
fn put_then_read_back_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = b"hello blob".to_vec();
    let d = digest_of(&data);
    let other = digest_of(b"other");
    assert_eq!(
        store
            .missing(&[d.clone(), other.clone(), d.clone()])
            .unwrap(),
        vec![d.clone(), other.clone()]
    );
    assert!(store.put(&d, data.len() as u64, &data[..]).unwrap());
    assert!(!store.put(&d, data.len() as u64, &data[..]).unwrap());
    assert_eq!(
        store.missing(&[d.clone(), other.clone()]).unwrap(),
        vec![other]
    );
    let mut back = Vec::new();
    BlobSource::open(&store, &d)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    let err = store.missing(&["nope".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("digests[0]"));
}

#[test]
fn wrong_digest_is_refused_and_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let claimed = digest_of(b"the real bytes");
    let err = store.put(&claimed, 9, &b"bad bytes"[..]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(err.field.as_deref(), Some("digest"));
    assert!(err.message.contains("digest mismatch"), "{}", err.message);
    assert!(!store.contains(&claimed).unwrap());
    assert_eq!(store.status(&claimed, &claimed, None).unwrap().offset, 0);
}

#[test]
fn size_overrun_and_short_upload() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = b"0123456789";
    let d = digest_of(data);
    let err = store.put(&d, 4, &data[..]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("data"));
    let lock = store.try_lock(&d).unwrap();
    let mut ing = store.begin_write(&lock, &d, 10, 0).unwrap().unwrap();
    ing.write(Bytes::copy_from_slice(&data[..3])).unwrap();
    let err = ing.commit().unwrap_err();
    assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    assert!(!store.contains(&d).unwrap());
}

#[test]
fn resume_from_held_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest_of(&data);
    let size = data.len() as u64;
    {
        let lock = store.try_lock("r1").unwrap();
        let mut ing = store.begin_write(&lock, &d, size, 0).unwrap().unwrap();
        ing.write(Bytes::copy_from_slice(&data[..70_000])).unwrap();
        // Dropped without commit: a broken stream.
    }
    let st = store.status("r1", &d, None).unwrap();
    assert_eq!(
        st,
        UploadStatus {
            offset: 70_000,
            committed: false
        }
    );
    // Another digest under the same ref sees nothing held.
    assert_eq!(
        store.status("r1", &digest_of(b"x"), None).unwrap().offset,
        0
    );

    let lock = store.try_lock("r1").unwrap();
    let err = store.begin_write(&lock, &d, size, 5).err().unwrap();
    assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    assert_eq!(err.field.as_deref(), Some("offset"));
    let mut ing = store.begin_write(&lock, &d, size, 70_000).unwrap().unwrap();
    assert_eq!(ing.offset(), 70_000);
    ing.write(Bytes::copy_from_slice(&data[70_000..])).unwrap();
    ing.commit().unwrap();
    drop(lock);
    assert!(store.contains(&d).unwrap());
    assert!(store.status("r1", &d, None).unwrap().committed);
    let back = fs::read(store.blob_path(&d).unwrap()).unwrap();
    assert_eq!(back, data);
}

#[test]
fn abandoned_partial_uploads_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = vec![7u8; 4096];
    let d = digest_of(&data);
    {
        let lock = store.try_lock(&d).unwrap();
        let mut ing = store.begin_write(&lock, &d, 8192, 0).unwrap().unwrap();
        ing.write(Bytes::copy_from_slice(&data)).unwrap();
    }
    assert_eq!(store.status(&d, &d, None).unwrap().offset, 4096);
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(store.expire_uploads(hour).unwrap(), 0);
    assert_eq!(store.status(&d, &d, None).unwrap().offset, 4096);
    assert_eq!(store.expire_uploads(std::time::Duration::ZERO).unwrap(), 1);
    assert_eq!(store.status(&d, &d, None).unwrap().offset, 0);
    assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
}

#[test]
fn an_upload_begun_with_another_size_does_not_block_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = b"the real bytes of the blob".to_vec();
    let d = digest_of(&data);
    let size = data.len() as u64;
    {
        // A client declared a wrong size and its stream ended short.
        let lock = store.try_lock(&d).unwrap();
        let mut ing = store
            .begin_write(&lock, &d, size + 100, 0)
            .unwrap()
            .unwrap();
        ing.write(Bytes::copy_from_slice(&data)).unwrap();
    }
    // Asked with the right size, nothing counts as held.
    assert_eq!(store.status(&d, &d, Some(size)).unwrap().offset, 0);
    assert_eq!(store.status(&d, &d, None).unwrap().offset, size);
    let lock = store.try_lock(&d).unwrap();
    let err = store.begin_write(&lock, &d, size, size).err().unwrap();
    assert_eq!(err.kind, ErrorKind::FailedPrecondition);
    assert!(
        err.message.contains(&format!("{} bytes", size + 100))
            && err.message.contains(&format!("{size} bytes")),
        "{}",
        err.message
    );
    // A write from offset 0 replaces what is held.
    let mut ing = store.begin_write(&lock, &d, size, 0).unwrap().unwrap();
    ing.write(Bytes::copy_from_slice(&data)).unwrap();
    ing.commit().unwrap();
    assert!(store.contains(&d).unwrap());
}

#[test]
fn open_removes_what_a_crash_leaves_and_keeps_resumable_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let d = digest_of(&data);
    let size = data.len() as u64;
    {
        let lock = store.try_lock("resumable").unwrap();
        let mut ing = store.begin_write(&lock, &d, size, 0).unwrap().unwrap();
        ing.write(Bytes::copy_from_slice(&data[..20_000])).unwrap();
    }
    let other = digest_of(b"committed");
    store.put(&other, 9, &b"committed"[..]).unwrap();
    // An upload of a blob that got committed under another ref.
    let (stale_data, stale_meta) = store.ingest_paths("stale");
    fs::write(&stale_meta, format!("{other} 9\n")).unwrap();
    fs::write(&stale_data, b"comm").unwrap();
    let ingest = dir.path().join("ingest");
    fs::write(ingest.join("orphan.data"), b"no meta").unwrap();
    fs::write(ingest.join("lonely.meta"), format!("{d} {size}\n")).unwrap();
    fs::write(ingest.join("cut.meta.tmp"), b"sha256:").unwrap();
    fs::write(ingest.join("garbled.meta"), b"nonsense").unwrap();
    fs::write(ingest.join("garbled.data"), b"x").unwrap();
    let (long_data, long_meta) = store.ingest_paths("too-long");
    fs::write(&long_meta, format!("{} 2\n", digest_of(b"ab"))).unwrap();
    fs::write(&long_data, b"abc").unwrap();
    let blobs = dir.path().join("blobs/sha256");
    fs::write(blobs.join("not-a-digest"), b"?").unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let mut left: Vec<String> = fs::read_dir(&ingest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let (keep_data, keep_meta) = store.ingest_paths("resumable");
    let mut want = vec![
        keep_data
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        keep_meta
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    ];
    want.sort();
    assert_eq!(left, want);
    assert!(!blobs.join("not-a-digest").exists());
    assert!(store.contains(&other).unwrap());
    assert_eq!(store.status("resumable", &d, None).unwrap().offset, 20_000);
}

#[test]
fn ref_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.try_lock("r").unwrap();
    assert!(store.try_lock("r").is_none());
    assert!(store.try_lock("other").is_some());
    drop(a);
    assert!(store.try_lock("r").is_some());
}

#[test]
fn concurrent_writers_with_different_refs_agree() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = digest_of(&data);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            let data = data.clone();
            let d = d.clone();
            std::thread::spawn(move || {
                let lock = store.try_lock(&format!("ref-{t}")).unwrap();
                if let Some(mut ing) = store.begin_write(&lock, &d, data.len() as u64, 0).unwrap() {
                    for c in data.chunks(10_000) {
                        ing.write(Bytes::copy_from_slice(c)).unwrap();
                    }
                    ing.commit().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(fs::read(store.blob_path(&d).unwrap()).unwrap(), data);
}
