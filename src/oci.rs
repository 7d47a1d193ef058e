//! OCI and Docker image types (descriptor, platform, manifest, index), their
//! media types, and their JSON bytes in Go struct field order.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::json::{self, Object};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const MT_IN_TOTO: &str = "application/vnd.in-toto+json";
pub const ARTIFACT_TYPE_ATTESTATION: &str = "application/vnd.docker.attestation.manifest.v1+json";

/// The 2-byte `{}` blob of the OCI empty descriptor.
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest (or the input when it has no algorithm).
pub fn digest_hex(digest: &str) -> &str {
    digest.split_once(':').map(|(_, h)| h).unwrap_or(digest)
}

/// The digest algorithms OCI registers, which oxport verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

/// The algorithm of a well-formed digest: `sha256:` with 64 or `sha512:` with
/// 128 lowercase hex digits. `None` for anything else, which is never trusted.
pub fn digest_algorithm(d: &str) -> Option<DigestAlgorithm> {
    let (alg, hex) = d.split_once(':')?;
    let (alg, len) = match alg {
        "sha256" => (DigestAlgorithm::Sha256, 64),
        "sha512" => (DigestAlgorithm::Sha512, 128),
        _ => return None,
    };
    let lower_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex.len() == len && lower_hex).then_some(alg)
}

/// True for `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    pub os_version: String,
    pub os_features: Vec<String>,
    pub variant: String,
}

impl Platform {
    pub fn new(os: &str, architecture: &str) -> Self {
        Platform {
            architecture: architecture.into(),
            os: os.into(),
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.str("architecture", &self.architecture)
            .str("os", &self.os);
        o.str_opt("os.version", &self.os_version);
        if !self.os_features.is_empty() {
            o.raw("os.features", &json::string_array(&self.os_features));
        }
        o.str_opt("variant", &self.variant);
        o.finish()
    }

    /// `os/arch[/variant]`, as containerd formats it.
    pub fn id(&self) -> String {
        let mut s = format!("{}/{}", self.os, self.architecture);
        if !self.variant.is_empty() {
            s.push('/');
            s.push_str(&self.variant);
        }
        s
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub urls: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    /// Base64 of embedded content.
    pub data: String,
    pub platform: Option<Platform>,
    pub artifact_type: String,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: String, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            ..Default::default()
        }
    }

    /// A descriptor of these bytes.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, digest_of(bytes), bytes.len() as u64)
    }

    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.str("mediaType", &self.media_type)
            .str("digest", &self.digest)
            .int("size", self.size as i64);
        if !self.urls.is_empty() {
            o.raw("urls", &json::string_array(&self.urls));
        }
        o.map_opt("annotations", &self.annotations);
        o.str_opt("data", &self.data);
        if let Some(p) = &self.platform {
            o.raw("platform", &p.to_json());
        }
        o.str_opt("artifactType", &self.artifact_type);
        o.finish()
    }
}

fn descriptors(ds: &[Descriptor]) -> String {
    if ds.is_empty() {
        // A nil slice in Go's structs.
        return "null".into();
    }
    json::array(ds.iter().map(Descriptor::to_json))
}

/// The fields manifests and indexes share before their own (Go struct order).
fn head(media_type: &str, artifact_type: &str) -> Object {
    let mut o = Object::new();
    o.int("schemaVersion", 2)
        .str_opt("mediaType", media_type)
        .str_opt("artifactType", artifact_type);
    o
}

/// The fields manifests and indexes share after their own.
fn tail(
    mut o: Object,
    subject: &Option<Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> String {
    if let Some(s) = subject {
        o.raw("subject", &s.to_json());
    }
    o.map_opt("annotations", annotations);
    o.finish()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub artifact_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Compact JSON (`json.Marshal`).
    pub fn to_json(&self) -> String {
        let mut o = head(&self.media_type, &self.artifact_type);
        o.raw("config", &self.config.to_json())
            .raw("layers", &descriptors(&self.layers));
        tail(o, &self.subject, &self.annotations)
    }

    /// The bytes BuildKit stores: two-space indent, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        json::pretty(&self.to_json()).into_bytes()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub media_type: String,
    pub artifact_type: String,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn to_json(&self) -> String {
        let mut o = head(&self.media_type, &self.artifact_type);
        o.raw("manifests", &descriptors(&self.manifests));
        tail(o, &self.subject, &self.annotations)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        json::pretty(&self.to_json()).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_field_order() {
        let mut d = Descriptor::new(MT_OCI_EMPTY, EMPTY_DIGEST.into(), 2);
        d.data = "e30=".into();
        d.platform = Some(Platform::new("linux", "arm64"));
        d.annotations.insert("k".into(), "v".into());
        d.artifact_type = "t".into();
        assert_eq!(
            d.to_json(),
            format!(
                r#"{{"mediaType":"{MT_OCI_EMPTY}","digest":"{EMPTY_DIGEST}","size":2,"annotations":{{"k":"v"}},"data":"e30=","platform":{{"architecture":"arm64","os":"linux"}},"artifactType":"t"}}"#
            )
        );
    }

    #[test]
    fn empty_blob_digest() {
        assert_eq!(digest_of(EMPTY_JSON), EMPTY_DIGEST);
        assert!(is_sha256_digest(EMPTY_DIGEST));
        assert!(!is_sha256_digest("sha256:ABC"));
    }
}
