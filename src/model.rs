//! The build result: what a builder hands to an exporter (BuildKit's
//! `exporter.Source`). Plain data, no I/O. The gRPC messages and the on-disk
//! `case.json` both map one to one onto these types.

use std::collections::BTreeMap;

/// Everything one export needs: which exporter, its attributes, and the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportRequest {
    /// `oci`, `docker` or `image`.
    pub exporter: String,
    pub attrs: BTreeMap<String, String>,
    /// 0 means the current version (30).
    pub compatibility_version: i32,
    pub result: BuildResult,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildResult {
    /// Platform id -> layer chain (lowest first). A single non-map ref has the key "".
    pub refs: BTreeMap<String, Vec<Layer>>,
    /// Result metadata, as the frontend set it.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// Platform id -> attestations, in the frontend's order.
    pub attestations: BTreeMap<String, Vec<Attestation>>,
    /// The builder's own version (BuildKit's `version.Version`); empty when the
    /// builder did not say. It goes into the creators of a supplemented SBOM.
    pub builder_version: String,
}

impl BuildResult {
    /// True when the refs are a platform map (`res.AddRef`), false for a single
    /// unnamed ref (`res.SetRef`).
    pub fn is_map(&self) -> bool {
        !(self.refs.len() == 1 && self.refs.contains_key(""))
    }
}

/// A layer as the builder knows it before export; its blob is in the content store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
    pub annotations: BTreeMap<String, String>,
    pub created_by: String,
    /// RFC 3339 creation time; empty when unknown.
    pub created: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationKind {
    InToto,
    Bundle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// The content was read from the attestation's ref.
    #[default]
    Frontend,
    /// The builder generated the content itself.
    Daemon,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttestationContent {
    /// The raw predicate bytes of an in-toto attestation.
    InToto(Vec<u8>),
    /// The files of a bundle directory: (file name, bytes), in any order.
    Bundle(Vec<(String, Vec<u8>)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    pub kind: AttestationKind,
    pub path: String,
    pub content: AttestationContent,
    pub predicate_type: String,
    /// Empty means one `Self` subject.
    pub subjects: Vec<Subject>,
    pub metadata: BTreeMap<String, String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// The image being exported.
    SelfImage,
    /// A name with explicit digests.
    Raw,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
    pub digest: Vec<String>,
}

/// The exporter response map (`containerimage.digest`, ...).
pub type ExportResponse = BTreeMap<String, String>;
