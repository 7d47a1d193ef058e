//! The registry client's public API against Debian's `docker-registry`:
//! chunked uploads, resuming a broken upload from the registry's `Range`,
//! cross-repository mounts, streaming fetches, manifests, tags and the
//! referrers probe.

mod registry_support;
mod support;

use registry_support::{KillProxy, Registry};

#[test]
fn chunked_uploads_mounts_and_fetches_through_the_client_api() {
    use oxport::registry::{BlobPush, ClientOptions, CredentialSource, FileBlob, RegistryClient};
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..(3 << 20) + 12345u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let desc = oxport::oci::Descriptor::of("application/octet-stream", &data);
    let client = RegistryClient::new(
        &reg.host(),
        ClientOptions {
            monolithic_max: 1 << 20,
            chunk_size: 1 << 20,
            credentials: CredentialSource::Anonymous,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let src = std::sync::Arc::new(FileBlob(path.clone()));
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s = std::sync::Arc::clone(&seen);
        let on = std::sync::Arc::new(move |n: u64| s.store(n, std::sync::atomic::Ordering::SeqCst));
        let first = client
            .push_blob("a", &desc, src.clone(), None, on.clone())
            .await
            .unwrap();
        assert_eq!(
            first,
            BlobPush::Uploaded {
                bytes: data.len() as u64
            }
        );
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            data.len() as u64
        );
        assert_eq!(
            client
                .push_blob("a", &desc, src.clone(), None, on.clone())
                .await
                .unwrap(),
            BlobPush::Existed
        );
        assert_eq!(
            client
                .push_blob("b", &desc, src, Some("a"), on)
                .await
                .unwrap(),
            BlobPush::Mounted
        );
        let mut stream = client.fetch_blob("b", &desc.digest).await.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert!(got == data, "fetched bytes differ");

        // Manifests by tag, tags and the referrers probe.
        let config = oxport::oci::Descriptor::of(oxport::oci::MT_OCI_EMPTY, b"{}");
        client
            .push_blob(
                "b",
                &config,
                std::sync::Arc::new(oxport::registry::BytesBlob(bytes::Bytes::from_static(
                    b"{}",
                ))),
                None,
                std::sync::Arc::new(|_| {}),
            )
            .await
            .unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            oxport::oci::MT_OCI_MANIFEST,
            config.to_json(),
            desc.to_json()
        );
        let put = client
            .put_manifest(
                "b",
                "t1",
                oxport::oci::MT_OCI_MANIFEST,
                manifest.clone().into(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(put.digest, oxport::oci::digest_of(manifest.as_bytes()));
        let resolved = client.resolve("b", "t1").await.unwrap().unwrap();
        assert_eq!(resolved.digest, put.digest);
        let fetched = client
            .get_manifest("b", &put.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fetched.bytes, manifest.as_bytes());
        assert_eq!(client.list_tags("b").await.unwrap(), vec!["t1".to_string()]);
        assert!(!client.supports_referrers("b", &put.digest).await.unwrap());
        assert!(client.get_manifest("b", "absent").await.unwrap().is_none());
    });
}

#[test]
fn an_interrupted_chunked_upload_resumes_from_the_registry_range() {
    use oxport::registry::{
        BlobPush, ClientOptions, CredentialSource, FileBlob, RegistryClient, RetryPolicy,
    };
    let Some(reg) = Registry::start(false) else {
        return;
    };
    // The connection is cut as the second chunk starts; the registry lives.
    let proxy = KillProxy::start(reg.port, "content-range: 1048576-", || {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    std::fs::write(&path, &data).unwrap();
    let desc = oxport::oci::Descriptor::of("application/octet-stream", &data);
    let client = RegistryClient::new(
        &format!("127.0.0.1:{}", proxy.port),
        ClientOptions {
            monolithic_max: 1 << 20,
            chunk_size: 1 << 20,
            credentials: CredentialSource::Anonymous,
            retry: RetryPolicy {
                attempts: 3,
                base_delay: std::time::Duration::from_millis(10),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pushed = rt.block_on(client.push_blob(
        "resume",
        &desc,
        std::sync::Arc::new(FileBlob(path)),
        None,
        std::sync::Arc::new(|_| {}),
    ));
    assert_eq!(
        pushed.unwrap(),
        BlobPush::Uploaded {
            bytes: data.len() as u64
        }
    );
    assert!(
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the cut never happened"
    );
    // One session, the first chunk sent once, the second twice.
    assert_eq!(proxy.occurrences("POST /v2/resume/blobs/uploads/"), 1);
    assert_eq!(proxy.occurrences("content-range: 0-1048575"), 1);
    assert_eq!(proxy.occurrences("content-range: 1048576-2097151"), 2);
    let r = reg.get(&format!("/v2/resume/blobs/{}", desc.digest), "*/*");
    assert_eq!(r.status, 200);
    assert!(r.body == data, "the stored blob differs");
}
