//! Small requests and an in-memory blob source for the unit tests of the
//! export steps.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use crate::blob::BlobSource;
use crate::model::{ExportRequest, Layer};
use crate::oci::{digest_of, MT_OCI_LAYER_GZIP};

/// Refs as (ref key, number of layers): one unnamed ref of one layer.
pub const SINGLE: &[(&str, usize)] = &[("", 1)];
/// Two platforms sharing their one layer.
pub const PLATFORM_MAP: &[(&str, usize)] = &[("linux/amd64", 1), ("linux/arm64", 1)];

/// The bytes of the `j`th layer of every ref (refs share layers by position).
pub fn layer_bytes(j: usize) -> Vec<u8> {
    format!("layer {j}").into_bytes()
}

fn layer(j: usize) -> Layer {
    let bytes = layer_bytes(j);
    Layer {
        media_type: MT_OCI_LAYER_GZIP.into(),
        digest: digest_of(&bytes),
        size: bytes.len() as u64,
        diff_id: digest_of(format!("diff {j}").as_bytes()),
        created_by: format!("RUN step {j}"),
        created: "2024-01-02T03:04:05Z".into(),
        ..Default::default()
    }
}

/// A request of `refs`; a map of several refs gets its `refs.platforms`.
pub fn request(exporter: &str, attrs: &[(&str, &str)], refs: &[(&str, usize)]) -> ExportRequest {
    let mut req = ExportRequest {
        exporter: exporter.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    for (key, n) in refs {
        req.result
            .refs
            .insert(key.to_string(), (0..*n).map(layer).collect());
    }
    if refs.len() > 1 {
        let platforms: Vec<String> = refs
            .iter()
            .map(|(id, _)| {
                let (os, arch) = id.split_once('/').unwrap_or_default();
                format!(r#"{{"ID":"{id}","Platform":{{"os":"{os}","architecture":"{arch}"}}}}"#)
            })
            .collect();
        req.result.metadata.insert(
            "refs.platforms".into(),
            format!(r#"{{"Platforms":[{}]}}"#, platforms.join(",")).into_bytes(),
        );
    }
    req
}

/// Blobs in memory, counting the size look-ups (one per layer exported).
#[derive(Default)]
pub struct MemBlobs {
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub sized: Mutex<Vec<String>>,
}

impl MemBlobs {
    /// The blobs of the first `n` layers of [`request`].
    pub fn layers(n: usize) -> MemBlobs {
        let blobs = (0..n)
            .map(|j| (digest_of(&layer_bytes(j)), layer_bytes(j)))
            .collect();
        MemBlobs {
            blobs,
            ..Default::default()
        }
    }
}

impl BlobSource for MemBlobs {
    fn open(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>> {
        match self.blobs.get(digest) {
            Some(b) => Ok(Box::new(std::io::Cursor::new(b.clone()))),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                digest.to_string(),
            )),
        }
    }

    fn size(&self, digest: &str) -> std::io::Result<Option<u64>> {
        self.sized.lock().unwrap().push(digest.to_string());
        Ok(self.blobs.get(digest).map(|b| b.len() as u64))
    }
}
