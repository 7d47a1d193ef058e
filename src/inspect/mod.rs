//! `oxport inspect`: the tree of an image (index -> platform manifests ->
//! attestation manifests -> referrers), checked as it is walked.
//!
//! Every blob is verified against its descriptor (size, then sha256,
//! streamed), subjects must resolve to an image manifest of the image, and
//! the `vnd.docker.reference.digest` annotation must agree with the subject.
//! Each problem is recorded with its location; the walk goes on.
//!
//! - [`render`]: the report as text or as JSON.
//! - [`referrers`]: a registry image's referrers (API or fallback tag).
//! - [`signatures`]: sigstore bundles among them, checked with a key.
//! - [`legacy_tags`]: cosign's older `.sig` and `.att` tags, checked too.

pub mod legacy_tags;
pub mod referrers;
pub mod render;
pub mod signatures;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::assemble::attest::{PREDICATE_TYPE_ANNOTATION, REFERENCE_DIGEST_ANNOTATION};
use crate::convert::{form_of, is_attestation_entry, Form};
use crate::error::Result;
use crate::image::files::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::image::remote::{RegistrySource, RemoteOptions};
use crate::image::{self, parse, BlobProblem, ImageRef};
use crate::oci::{self, Descriptor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

/// One in-toto statement of an attestation manifest.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    pub digest: String,
    pub predicate_type: String,
    /// (name, digests as `alg:hex`).
    pub subjects: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct Attestation {
    pub location: String,
    pub descriptor: Descriptor,
    pub form: Option<Form>,
    /// The digest of the image it is about (subject, or the annotation).
    pub subject: String,
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub location: String,
    pub descriptor: Descriptor,
    pub layers: usize,
    pub attestations: Vec<Attestation>,
    /// Registry images only: the manifests naming this one as subject.
    pub referrers: Vec<referrers::Referrer>,
}

/// One distinct `index.json` target, with the names it is listed under.
#[derive(Debug, Clone)]
pub struct Root {
    pub location: String,
    pub descriptor: Descriptor,
    pub names: Vec<String>,
    pub images: Vec<Image>,
    /// Attestations in this index whose image is not in it.
    pub unattached: Vec<Attestation>,
    /// Registry images only: the manifests naming the root as subject.
    pub referrers: Vec<referrers::Referrer>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub source: String,
    pub roots: Vec<Root>,
    /// Attestation manifests listed on their own (in `index.json`, or only
    /// as a registry image's referrers), found by their subject.
    pub referrers: Vec<Attestation>,
    /// Signatures (sigstore bundles) of the roots and their images.
    pub signatures: Vec<signatures::Signature>,
    pub problems: Vec<Problem>,
}

/// Image manifest descriptors by digest (the first listing of a digest).
pub(crate) struct ImageIndex(HashMap<String, Descriptor>);

impl ImageIndex {
    pub(crate) fn of<'d>(descriptors: impl Iterator<Item = &'d Descriptor>) -> Self {
        let mut m = HashMap::new();
        for d in descriptors {
            m.entry(d.digest.clone()).or_insert_with(|| d.clone());
        }
        ImageIndex(m)
    }

    fn get(&self, digest: &str) -> Option<&Descriptor> {
        self.0.get(digest)
    }
}

struct Walker<'a> {
    src: &'a dyn image::Image,
    /// The public key signatures are checked with, when given.
    key: Option<&'a crate::sign::PublicKey>,
    /// Blobs checked so far and what was wrong with them.
    checked: HashMap<String, Option<BlobProblem>>,
    problems: Vec<Problem>,
}

impl Walker<'_> {
    fn problem(&mut self, location: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: location.to_string(),
            message: message.into(),
        });
    }

    /// Verifies a blob once; reports a problem at its first location.
    fn check(&mut self, d: &Descriptor, at: &str) -> bool {
        if let Some(p) = self.checked.get(&d.digest) {
            return p.is_none();
        }
        let p = match image::check_blob(self.src, d) {
            Ok(p) => p,
            Err(e) => Some(BlobProblem::Digest {
                actual: format!("unreadable ({})", e.message),
            }),
        };
        if let Some(p) = &p {
            let msg = match p {
                BlobProblem::Size { stored } => {
                    format!(
                        "{}: blob has {stored} bytes, the descriptor says {}",
                        d.digest, d.size
                    )
                }
                p => format!("{}: {p}", d.digest),
            };
            self.problem(at, msg);
        }
        self.checked.insert(d.digest.clone(), p.clone());
        p.is_none()
    }

    /// A JSON blob, read only when it checks out.
    fn json(&mut self, d: &Descriptor, at: &str) -> Option<Vec<u8>> {
        if !self.check(d, at) {
            return None;
        }
        match image::read_blob(self.src, d) {
            Ok(b) => Some(b),
            Err(e) => {
                self.problem(at, e.message);
                None
            }
        }
    }

    fn image(&mut self, d: &Descriptor, at: &str) -> Image {
        let mut img = Image {
            location: at.to_string(),
            descriptor: d.clone(),
            layers: 0,
            attestations: Vec::new(),
            referrers: Vec::new(),
        };
        let Some(bytes) = self.json(d, at) else {
            return img;
        };
        match parse::manifest(&bytes, at) {
            Ok(m) => {
                let m = m.value;
                self.check(&m.config, &format!("{at}/config"));
                img.layers = m.layers.len();
                for (j, l) in m.layers.iter().enumerate() {
                    self.check(l, &format!("{at}/layers[{j}]"));
                }
            }
            Err(e) => self.problem(at, e.message),
        }
        img
    }

    fn attestation(&mut self, d: &Descriptor, images: &ImageIndex, at: &str) -> Attestation {
        let annotated = d.annotations.get(REFERENCE_DIGEST_ANNOTATION).cloned();
        let mut att = Attestation {
            location: at.to_string(),
            descriptor: d.clone(),
            form: None,
            subject: annotated.clone().unwrap_or_default(),
            statements: Vec::new(),
        };
        let Some(bytes) = self.json(d, at) else {
            return att;
        };
        let m = match parse::manifest(&bytes, at) {
            Ok(m) => m.value,
            Err(e) => {
                self.problem(at, e.message);
                return att;
            }
        };
        let form = form_of(&m);
        att.form = Some(form);
        match (form, &m.subject, &annotated) {
            (Form::Artifact, None, _) => self.problem(at, "artifact form without a subject"),
            (Form::Artifact, Some(s), Some(a)) if *a != s.digest => self.problem(
                at,
                format!(
                    "{REFERENCE_DIGEST_ANNOTATION} {a} disagrees with the subject {}",
                    s.digest
                ),
            ),
            (Form::Legacy, _, None) => self.problem(
                at,
                format!("legacy form without {REFERENCE_DIGEST_ANNOTATION}"),
            ),
            _ => {}
        }
        if let Some(s) = &m.subject {
            att.subject = s.digest.clone();
        }
        if !att.subject.is_empty() {
            match images.get(att.subject.as_str()) {
                None => self.problem(
                    at,
                    format!(
                        "subject {} is not an image manifest of this image",
                        att.subject
                    ),
                ),
                Some(i) => {
                    if let Some(s) = &m.subject {
                        if s.size != i.size || s.media_type != i.media_type {
                            self.problem(
                                at,
                                format!(
                                    "subject {} says {} bytes of {}, the image manifest is {} bytes of {}",
                                    s.digest, s.size, s.media_type, i.size, i.media_type
                                ),
                            );
                        }
                    }
                }
            }
        }
        self.check(&m.config, &format!("{at}/config"));
        for (j, l) in m.layers.iter().enumerate() {
            let lat = format!("{at}/layers[{j}]");
            let mut st = Statement {
                digest: l.digest.clone(),
                predicate_type: l
                    .annotations
                    .get(PREDICATE_TYPE_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                subjects: Vec::new(),
            };
            if let Some(bytes) = self.json(l, &lat) {
                self.statement(&bytes, &mut st, &lat);
            }
            att.statements.push(st);
        }
        att
    }

    fn statement(&mut self, bytes: &[u8], st: &mut Statement, at: &str) {
        let v: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => return self.problem(at, format!("statement is not JSON: {e}")),
        };
        let pt = v.get("predicateType").and_then(Value::as_str).unwrap_or("");
        if st.predicate_type.is_empty() {
            st.predicate_type = pt.to_string();
        } else if pt != st.predicate_type {
            self.problem(
                at,
                format!(
                    "{PREDICATE_TYPE_ANNOTATION} {} disagrees with the statement's {pt}",
                    st.predicate_type
                ),
            );
        }
        for s in v
            .get("subject")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let digests = s
                .get("digest")
                .and_then(Value::as_object)
                .map(|m| {
                    let sorted: BTreeMap<_, _> = m.iter().collect();
                    sorted
                        .into_iter()
                        .map(|(alg, h)| format!("{alg}:{}", h.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            st.subjects.push((name, digests));
        }
    }

    /// An index: its image manifests, then its attestations under them.
    fn index(&mut self, root: &mut Root) {
        let at = root.location.clone();
        let Some(bytes) = self.json(&root.descriptor, &at) else {
            return;
        };
        let idx = match parse::index(&bytes, &at) {
            Ok(i) => i.value,
            Err(e) => return self.problem(&at, e.message),
        };
        for (j, c) in idx.manifests.iter().enumerate() {
            if !is_attestation_entry(c) {
                let img = self.image(c, &format!("{at}/manifests[{j}]"));
                root.images.push(img);
            }
        }
        let descriptors = ImageIndex::of(root.images.iter().map(|i| &i.descriptor));
        let position: HashMap<String, usize> = root
            .images
            .iter()
            .enumerate()
            .rev()
            .map(|(k, i)| (i.descriptor.digest.clone(), k))
            .collect();
        for (j, c) in idx.manifests.iter().enumerate() {
            if is_attestation_entry(c) {
                let att = self.attestation(c, &descriptors, &format!("{at}/manifests[{j}]"));
                match position.get(&att.subject) {
                    Some(&k) => root.images[k].attestations.push(att),
                    None => root.unattached.push(att),
                }
            }
        }
    }
}

/// Walks and checks every entry of `src` (or those its reference selects).
pub fn inspect(src: &dyn image::Image, source: &str) -> Result<Report> {
    walk(src, source, None, None)
}

/// Walks and checks a registry image, with its referrers.
pub fn inspect_registry(src: &RegistrySource, source: &str) -> Result<Report> {
    walk(src, source, Some(src), None)
}

fn walk(
    src: &dyn image::Image,
    source: &str,
    remote: Option<&RegistrySource>,
    key: Option<&crate::sign::PublicKey>,
) -> Result<Report> {
    let top = parse::index(&src.index_json()?, "index.json")?.value;
    if let Some(r) = src.reference() {
        refuse_unknown_reference(&top.manifests, r, source)?;
    }
    let mut w = Walker {
        src,
        key,
        checked: HashMap::new(),
        problems: Vec::new(),
    };
    let mut roots: Vec<Root> = Vec::new();
    // Root position by digest: an entry listed again adds its name.
    let mut root_at: HashMap<String, usize> = HashMap::new();
    let mut detached = Vec::new();
    let mut signed = Vec::new();
    let mut tagged = Vec::new();
    for (i, e) in top.manifests.iter().enumerate() {
        let at = format!("index.json/manifests[{i}]");
        let ref_name = e.annotations.get(ANNOTATION_REF_NAME);
        if let Some(tag) = ref_name.and_then(|n| crate::sign::tags::tag_subject(n)) {
            tagged.push((e.clone(), tag, at));
            continue;
        }
        if let Some(r) = src.reference() {
            if ref_name.map(String::as_str) != Some(r) {
                continue;
            }
        }
        if is_attestation_entry(e) {
            detached.push((e.clone(), at));
            continue;
        }
        if signatures::is_signature(e) {
            signed.push((e.clone(), at));
            continue;
        }
        let name = e
            .annotations
            .get(ANNOTATION_IMAGE_NAME)
            .or_else(|| e.annotations.get(ANNOTATION_REF_NAME))
            .cloned();
        if let Some(&k) = root_at.get(&e.digest) {
            roots[k].names.extend(name);
            continue;
        }
        root_at.insert(e.digest.clone(), roots.len());
        let mut root = Root {
            location: at.clone(),
            descriptor: e.clone(),
            names: name.into_iter().collect(),
            images: Vec::new(),
            unattached: Vec::new(),
            referrers: Vec::new(),
        };
        if image::is_index(&e.media_type) {
            w.index(&mut root);
        } else if e.media_type == oci::MT_OCI_MANIFEST || e.media_type == oci::MT_DOCKER_MANIFEST {
            let img = w.image(e, &at);
            root.images.push(img);
        } else {
            w.check(e, &at);
        }
        roots.push(root);
    }
    let all_images = ImageIndex::of(
        roots
            .iter()
            .flat_map(|r| r.images.iter().map(|i| &i.descriptor)),
    );
    let mut alone: Vec<Attestation> = detached
        .into_iter()
        .map(|(e, at)| w.attestation(&e, &all_images, &at))
        .collect();
    let mut sigs: Vec<signatures::Signature> = signed
        .into_iter()
        .filter_map(|(e, at)| w.signature(&e, &at))
        .collect();
    // A layout's cosign tags: with a reference, those of its image only.
    let tree = legacy_tags::tree_digests(&roots);
    for (e, (subject, kind), at) in tagged {
        if src.reference().is_none() || tree.contains(&subject) {
            sigs.extend(w.tag_signatures(&e, (&subject, kind), &at));
        }
    }
    if let Some(remote) = remote {
        let (attestations, found) = referrers::collect(&mut w, &mut roots, remote);
        alone.extend(attestations);
        sigs.extend(found);
        sigs.extend(legacy_tags::from_registry(&mut w, &tree, remote));
    }
    Ok(Report {
        source: source.to_string(),
        roots,
        referrers: alone,
        signatures: sigs,
        problems: w.problems,
    })
}

/// A reference that no entry of `index.json` carries is an error, not an
/// empty report: "problems: none" would read as a healthy image.
fn refuse_unknown_reference(entries: &[oci::Descriptor], r: &str, source: &str) -> Result<()> {
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.annotations.get(ANNOTATION_REF_NAME).map(String::as_str))
        .collect();
    if names.contains(&r) {
        return Ok(());
    }
    let known = if names.is_empty() {
        "it names no entry".to_string()
    } else {
        format!("it names {}", names.join(", "))
    };
    Err(crate::error::ExportError::new(
        crate::error::ErrorKind::NotFound,
        format!("{source}: no entry of index.json has the reference {r:?} ({known})"),
    ))
}

/// Opens `src` and inspects it; signatures are checked with `key` when given.
pub fn run(
    src: &ImageRef,
    opts: &RemoteOptions,
    key: Option<&crate::sign::PublicKey>,
) -> Result<Report> {
    if let ImageRef::Registry(r) = src {
        let remote = RegistrySource::open(r, opts)?;
        return walk(&remote, &src.to_string(), Some(&remote), key);
    }
    let store = image::open(src, opts)?;
    walk(&*store, &src.to_string(), None, key)
}
