//! The blobs an image's `index.json` reaches: the listing a sink writes
//! for an image that holds no list of its own (an archive, a layout
//! directory, a registry image).
//!
//! Why a walk and not the store's file list: a layout may hold blobs that
//! nothing names any more, and a registry cannot list a repository's blobs;
//! what an image is, is what its index reaches.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{is_index, is_manifest, parse, read_blob, Blobs, Image};
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::Descriptor;

/// Blobs by digest, each with its bytes when they were read or written
/// whole.
pub type Found = BTreeMap<String, (Descriptor, Option<Vec<u8>>)>;

/// Every blob `index.json` reaches, in digest order: manifests and indexes
/// read whole and verified, other blobs checked to be there with their
/// size. A blob listed twice (or an index inside itself) is listed once.
pub fn reachable<I: Image + ?Sized>(image: &I) -> Result<Blobs<'static>> {
    let top = parse::index(&image.index_json()?, "index.json")?.value;
    let found = reachable_from(image, &top.manifests, &BTreeMap::new())?;
    Ok(found
        .into_values()
        .map(|(d, b)| (d, b.map(Cow::Owned)))
        .collect())
}

/// Every blob `entries` (the manifests of an `index.json`, named so in
/// errors) reach: `written` blobs from memory, the others from `image`.
/// Descriptors are kept plain (media type, digest, size), as a layout's
/// blobs are listed.
pub fn reachable_from<I: Image + ?Sized>(
    image: &I,
    entries: &[Descriptor],
    written: &BTreeMap<String, Vec<u8>>,
) -> Result<Found> {
    let mut out = Found::new();
    let mut stack: Vec<(Descriptor, String)> = entries
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (e.clone(), format!("index.json/manifests[{i}]")))
        .collect();
    while let Some((d, at)) = stack.pop() {
        if out.contains_key(&d.digest) {
            continue;
        }
        let plain = Descriptor::new(&d.media_type, d.digest.clone(), d.size);
        let json = is_index(&d.media_type) || is_manifest(&d.media_type);
        let bytes = match written.get(&d.digest) {
            Some(b) => b.clone(),
            None if json => read_blob(image, &d).map_err(|e| e.context(&at))?,
            None => {
                check_stored(image, &d, &at)?;
                out.insert(d.digest.clone(), (plain, None));
                continue;
            }
        };
        if is_index(&d.media_type) {
            let children = parse::index(&bytes, &at)?.value.manifests;
            for (j, c) in children.into_iter().enumerate() {
                stack.push((c, format!("{at}/manifests[{j}]")));
            }
        } else if json {
            let m = parse::manifest(&bytes, &at)?.value;
            stack.push((m.config, format!("{at}/config")));
            for (j, l) in m.layers.into_iter().enumerate() {
                stack.push((l, format!("{at}/layers[{j}]")));
            }
        }
        out.insert(d.digest.clone(), (plain, Some(bytes)));
    }
    Ok(out)
}

/// A blob left in the store: there, with the size its descriptor names.
fn check_stored<I: Image + ?Sized>(image: &I, d: &Descriptor, at: &str) -> Result<()> {
    match image.blob_size(&d.digest) {
        Some(s) if s == d.size => Ok(()),
        Some(s) => Err(ExportError::invalid(
            at,
            format!("{at}: {}: blob has {s} bytes, not {}", d.digest, d.size),
        )),
        None => Err(ExportError::new(
            ErrorKind::NotFound,
            format!("{at}: {}: blob is missing", d.digest),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;
    use crate::oci::{self, Index, Manifest};

    /// Blobs by digest and an `index.json`, all in memory.
    struct Memory {
        index_json: Vec<u8>,
        blobs: BTreeMap<String, Vec<u8>>,
    }

    impl Image for Memory {
        fn index_json(&self) -> Result<Cow<'_, [u8]>> {
            Ok(Cow::Borrowed(&self.index_json))
        }
        fn blob_size(&self, digest: &str) -> Option<u64> {
            self.blobs.get(digest).map(|b| b.len() as u64)
        }
        fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
            let b = self.blobs.get(digest).cloned().unwrap_or_default();
            Ok(Box::new(Cursor::new(b)))
        }
    }

    fn add(blobs: &mut BTreeMap<String, Vec<u8>>, media_type: &str, b: &[u8]) -> Descriptor {
        let d = Descriptor::of(media_type, b);
        blobs.insert(d.digest.clone(), b.to_vec());
        d
    }

    #[test]
    fn an_image_without_a_list_lists_what_its_index_reaches() {
        let mut blobs = BTreeMap::new();
        let layer = add(&mut blobs, oci::MT_OCI_LAYER_GZIP, b"layer");
        let config = add(&mut blobs, oci::MT_OCI_CONFIG, b"{}");
        add(&mut blobs, oci::MT_OCI_LAYER_GZIP, b"left over");
        let manifest = Manifest {
            media_type: oci::MT_OCI_MANIFEST.into(),
            config: config.clone(),
            layers: vec![layer.clone()],
            ..Default::default()
        };
        let m = add(&mut blobs, oci::MT_OCI_MANIFEST, &manifest.to_bytes());
        let index = Index {
            media_type: oci::MT_OCI_INDEX.into(),
            manifests: vec![m.clone(), m.clone()],
            ..Default::default()
        };
        let image = Memory {
            index_json: index.to_json().into_bytes(),
            blobs,
        };
        let listed = image.blobs().unwrap();
        let mut want = vec![&layer.digest, &config.digest, &m.digest];
        want.sort();
        let got: Vec<&String> = listed.iter().map(|(d, _)| &d.digest).collect();
        assert_eq!(got, want);
        for (d, bytes) in &listed {
            assert_eq!(bytes.is_some(), d.digest == m.digest, "{}", d.digest);
        }
        let mut streamed = Vec::new();
        image
            .stream(&layer, &mut |r| r.read_to_end(&mut streamed).map(drop))
            .unwrap();
        assert_eq!(streamed, b"layer");
    }

    #[test]
    fn a_missing_blob_is_named_with_its_place() {
        let mut blobs = BTreeMap::new();
        let config = Descriptor::of(oci::MT_OCI_CONFIG, b"{}");
        let manifest = Manifest {
            media_type: oci::MT_OCI_MANIFEST.into(),
            config,
            ..Default::default()
        };
        let m = add(&mut blobs, oci::MT_OCI_MANIFEST, &manifest.to_bytes());
        let image = Memory {
            index_json: Index {
                manifests: vec![m],
                ..Default::default()
            }
            .to_json()
            .into_bytes(),
            blobs,
        };
        let err = image.blobs().unwrap_err();
        assert!(
            err.message
                .contains("index.json/manifests[0]/config: sha256:"),
            "{}",
            err.message
        );
    }
}
