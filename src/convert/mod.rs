//! `oxport convert`: move an image's attestation manifests between the
//! legacy and the artifact form.
//!
//! Only attestation manifests, the indexes that list them and `index.json`
//! change; every other blob is copied byte for byte (and verified on the
//! way). The output holds exactly the blobs reachable from the new
//! `index.json`, so the configs of the old form are dropped, as an export
//! in the target form would never have written them.
//!
//! - [`manifest`]: one attestation manifest rewritten.
//! - [`plan`]: the new layout, computed from a store without writing.
//! - [`layout`]: the new layout, and the same seen as a [`crate::image::Image`].
//! - [`push`]: the new layout written to a registry.

pub mod layout;
pub mod manifest;
pub mod push;
mod to_layout;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use tracing::warn;

use crate::error::{ErrorKind, ExportError, Result};
use crate::image::files::ANNOTATION_REF_NAME;
use crate::image::parse;
use crate::image::remote::{self, RemoteOptions};
use crate::image::{self, is_manifest, Image, ImageRef};
use crate::oci::{self, Descriptor, Index};
use crate::sink::Sink;

pub use layout::{BlobData, NewLayout};

pub use manifest::{form_of, is_attestation_entry, Form};

use crate::assemble::attest::REFERENCE_DIGEST_ANNOTATION;

/// One manifest or index whose digest changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where it stands, e.g. `index.json/manifests[0]/manifests[2]`.
    pub location: String,
    pub from: String,
    pub to: String,
}

/// The result of planning a conversion.
pub struct Conversion {
    pub layout: NewLayout,
    pub changes: Vec<Change>,
}

struct Planner<'a> {
    src: &'a dyn Image,
    to: Form,
    /// Blobs the conversion writes, by digest.
    written: BTreeMap<String, Vec<u8>>,
    /// (old digest, subject) -> new descriptor: what is listed twice converts once.
    done: HashMap<String, Descriptor>,
    /// Image manifests by digest, for detached attestations' subjects.
    images: HashMap<String, Descriptor>,
    changes: Vec<Change>,
    /// The indexes being converted, outermost first: a digest listed again
    /// inside itself is a cycle.
    open: Vec<String>,
}

/// How deep indexes may nest. Real images nest one or two levels; the limit
/// keeps a hostile chain from exhausting the stack.
pub const MAX_INDEX_DEPTH: usize = 16;

fn read_index(src: &dyn Image, d: &Descriptor, at: &str) -> Result<parse::Parsed<Index>> {
    let bytes = image::read_blob(src, d).map_err(|e| e.context(at))?;
    parse::index(&bytes, at)
}

impl Planner<'_> {
    fn entry(
        &mut self,
        d: &Descriptor,
        subject: Option<&Descriptor>,
        at: &str,
    ) -> Result<Descriptor> {
        // Legacy manifests of different images can share bytes (statements
        // without subjects), so a conversion is known by manifest and image.
        let key = format!("{} {}", d.digest, subject.map_or("", |s| s.digest.as_str()));
        if let Some(done) = self.done.get(&key) {
            let mut out = d.clone();
            out.digest = done.digest.clone();
            out.size = done.size;
            return Ok(out);
        }
        let new = if image::is_index(&d.media_type) {
            self.nested_index(d, at)?
        } else if is_manifest(&d.media_type) && is_attestation_entry(d) {
            self.attestation(d, subject, at)?
        } else {
            return Ok(d.clone());
        };
        if new.digest != d.digest {
            self.changes.push(Change {
                location: at.to_string(),
                from: d.digest.clone(),
                to: new.digest.clone(),
            });
        }
        self.done.insert(key, new.clone());
        Ok(new)
    }

    /// An index inside the walk: refused when it nests too deep or lists
    /// itself, directly or through others.
    fn nested_index(&mut self, d: &Descriptor, at: &str) -> Result<Descriptor> {
        if self.open.contains(&d.digest) {
            return Err(ExportError::invalid(
                at,
                format!("{at}: index {} lists itself (a cycle)", d.digest),
            ));
        }
        if self.open.len() >= MAX_INDEX_DEPTH {
            return Err(ExportError::invalid(
                at,
                format!("{at}: indexes nest more than {MAX_INDEX_DEPTH} levels deep"),
            ));
        }
        self.open.push(d.digest.clone());
        let r = self.index(d, at);
        self.open.pop();
        r
    }

    fn index(&mut self, d: &Descriptor, at: &str) -> Result<Descriptor> {
        let parsed = read_index(self.src, d, at)?;
        let mut idx = parsed.value;
        let children = idx.manifests.clone();
        // The images this index lists, by digest (first listing wins).
        let mut listed: HashMap<&str, &Descriptor> = HashMap::new();
        for c in children.iter().filter(|c| !is_attestation_entry(c)) {
            listed.entry(c.digest.as_str()).or_insert(c);
        }
        let mut changed = false;
        for (j, c) in children.iter().enumerate() {
            let at = format!("{at}/manifests[{j}]");
            let subject = c
                .annotations
                .get(REFERENCE_DIGEST_ANNOTATION)
                .and_then(|s| {
                    listed
                        .get(s.as_str())
                        .copied()
                        .or_else(|| self.images.get(s))
                })
                .cloned();
            let new = self.entry(c, subject.as_ref(), &at)?;
            changed |= new.digest != c.digest;
            idx.manifests[j] = new;
        }
        if !changed {
            return Ok(d.clone());
        }
        if !parsed.dropped.is_empty() {
            warn!(location = at, fields = ?parsed.dropped, "fields outside the OCI index are dropped");
        }
        Ok(self.write(d, idx.to_bytes()))
    }

    fn attestation(
        &mut self,
        d: &Descriptor,
        subject: Option<&Descriptor>,
        at: &str,
    ) -> Result<Descriptor> {
        let bytes = image::read_blob(self.src, d).map_err(|e| e.context(at))?;
        let parsed = parse::manifest(&bytes, at)?;
        // A detached attestation finds its image through the annotation.
        let subject = subject.cloned().or_else(|| {
            d.annotations
                .get(REFERENCE_DIGEST_ANNOTATION)
                .and_then(|s| self.images.get(s).cloned())
        });
        let Some(new) = manifest::rewrite(&parsed.value, self.to, subject.as_ref(), at)? else {
            return Ok(d.clone());
        };
        if !parsed.dropped.is_empty() {
            warn!(location = at, fields = ?parsed.dropped, "fields outside the OCI manifest are dropped");
        }
        let (cfg, cfg_bytes) = new.config;
        self.written.insert(cfg.digest, cfg_bytes);
        Ok(self.write(d, new.bytes))
    }

    fn write(&mut self, d: &Descriptor, bytes: Vec<u8>) -> Descriptor {
        let mut out = d.clone();
        out.digest = oci::digest_of(&bytes);
        out.size = bytes.len() as u64;
        self.written.insert(out.digest.clone(), bytes);
        out
    }

    /// Every image manifest the top-level entries and their indexes name.
    fn collect_images(&mut self, entries: &[Descriptor]) -> Result<()> {
        for (i, e) in entries.iter().enumerate() {
            if is_attestation_entry(e) {
                continue;
            }
            if image::is_index(&e.media_type) {
                let at = format!("index.json/manifests[{i}]");
                for c in read_index(self.src, e, &at)?.value.manifests {
                    if !is_attestation_entry(&c) {
                        self.images.insert(c.digest.clone(), c);
                    }
                }
            } else {
                self.images.insert(e.digest.clone(), e.clone());
            }
        }
        Ok(())
    }
}

/// Plans the conversion of every entry of `src` (or of those its reference
/// selects) into `to`. `dest_ref` names the converted entries.
pub fn plan(src: &dyn Image, to: Form, dest_ref: Option<&str>) -> Result<Conversion> {
    let index_bytes = src.index_json()?.into_owned();
    let top = parse::index(&index_bytes, "index.json")?.value;
    let selected: Vec<bool> = top
        .manifests
        .iter()
        .map(|e| match src.reference() {
            Some(r) => e.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(r),
            None => true,
        })
        .collect();
    if let Some(r) = src.reference() {
        if !selected.contains(&true) {
            return Err(ExportError::new(
                ErrorKind::NotFound,
                format!("no index.json entry has the reference {r:?}"),
            ));
        }
    }
    let mut p = Planner {
        src,
        to,
        written: BTreeMap::new(),
        done: HashMap::new(),
        images: HashMap::new(),
        changes: Vec::new(),
        open: Vec::new(),
    };
    p.collect_images(&top.manifests)?;
    let mut entries = Vec::with_capacity(top.manifests.len());
    for (i, e) in top.manifests.iter().enumerate() {
        if !selected[i] {
            entries.push(e.clone());
            continue;
        }
        // A detached attestation names its image by annotation.
        let subject = e
            .annotations
            .get(REFERENCE_DIGEST_ANNOTATION)
            .and_then(|s| p.images.get(s))
            .cloned();
        let mut new = p.entry(e, subject.as_ref(), &format!("index.json/manifests[{i}]"))?;
        if let Some(r) = dest_ref {
            new.annotations
                .insert(ANNOTATION_REF_NAME.into(), r.to_string());
        }
        entries.push(new);
    }
    let index_json = if entries == top.manifests {
        index_bytes
    } else {
        Index {
            manifests: entries.clone(),
            ..top
        }
        .to_json()
        .into_bytes()
    };
    let blobs = reachable(src, &entries, &p.written)?;
    Ok(Conversion {
        layout: NewLayout {
            blobs,
            index_json,
            manifest_json: src.manifest_json()?.map(Cow::into_owned),
        },
        changes: p.changes,
    })
}

/// The blobs reachable from `entries`: written ones from memory, the rest
/// from the store (checked to be there with the right size).
fn reachable(
    src: &dyn Image,
    entries: &[Descriptor],
    written: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, (Descriptor, BlobData)>> {
    let found = image::listing::reachable_from(src, entries, written)?;
    Ok(found
        .into_iter()
        .map(|(digest, (d, bytes))| (digest, (d, bytes.map_or(BlobData::Stored, BlobData::Bytes))))
        .collect())
}

/// What a finished conversion did.
pub struct Summary {
    pub changes: Vec<Change>,
    /// For a registry destination: what it got.
    pub pushed: Option<push::Pushed>,
}

/// The root `index.json` names first, other than attestations listed alone.
fn first_root(src: &dyn Image) -> Result<Option<String>> {
    let top = parse::index(&src.index_json()?, "index.json")?.value;
    Ok(top
        .manifests
        .into_iter()
        .find(|e| !is_attestation_entry(e))
        .map(|e| e.digest))
}

/// Converts `src` into `to` and writes the result at `dst`. The output
/// appears only when complete (a registry's tags move last); `src` and
/// `dst` may be the same.
pub fn run(src: &ImageRef, dst: &ImageRef, to: Form, opts: &RemoteOptions) -> Result<Summary> {
    let source: Arc<dyn Image> = Arc::from(image::open(src, opts)?);
    let (path, as_dir, dest_ref) = match dst {
        ImageRef::Archive(p) => (p, false, None),
        ImageRef::Layout { dir, reference } => (dir, true, reference.as_deref()),
        ImageRef::Registry(r) => return to_registry(src, r, source, to, opts),
    };
    let conv = plan(&*source, to, dest_ref)?;
    let path_str = path.to_str().ok_or_else(|| {
        ExportError::invalid("destination", format!("{}: not UTF-8", path.display()))
    })?;
    use crate::destination::Destination;
    let (layout, dest) = if as_dir {
        let (layout, update) = to_layout::prepare(conv.layout, &*source, src, path, dest_ref)?;
        (layout, Destination::create_layout(path_str, update))
    } else {
        (conv.layout, Destination::create(path_str, false))
    };
    let mut dest = dest.map_err(|e| ExportError::from(e).context(&dst.to_string()))?;
    Sink::write(&mut dest, &layout.over(&*source), &mut |_| {})?;
    dest.flush()?;
    dest.finish()
        .map_err(|e| ExportError::from(e).context(&dst.to_string()))?;
    Ok(Summary {
        changes: conv.changes,
        pushed: None,
    })
}

/// Converts `src` and pushes the result to the registry image `r`.
fn to_registry(
    src: &ImageRef,
    r: &str,
    source: Arc<dyn Image>,
    to: Form,
    opts: &RemoteOptions,
) -> Result<Summary> {
    let conv = plan(&*source, to, None)?;
    let target = remote::parse_ref(r)?;
    let same_registry = match src {
        ImageRef::Registry(s) => {
            let s = remote::parse_ref(s)?;
            (s.domain == target.domain).then_some(s.path)
        }
        _ => None,
    };
    let in_place = same_registry.as_deref() == Some(target.path.as_str());
    let mut sink = push::RegistryDestination {
        dst: push::Destination {
            reference: r,
            opts,
            mount_from: same_registry,
            retag_from: if in_place {
                first_root(&*source)?
            } else {
                None
            },
            select: source.reference().map(String::from),
        },
        src: Arc::clone(&source),
        pushed: None,
    };
    sink.write(&conv.layout.over(&*source), &mut |_| {})?;
    Ok(Summary {
        changes: conv.changes,
        pushed: sink.pushed,
    })
}
