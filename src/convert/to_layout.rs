//! A conversion written to a layout directory (`oci:DIR[:REF]`), which is
//! added to what the directory holds (see `destination::layout_dir`).
//!
//! - The same layout as the source, every entry converted (no reference on
//!   either side): the new `index.json` is the whole layout and replaces the
//!   old one; the old blobs stay.
//! - Otherwise only the entries the conversion is about go in: every entry
//!   of a source without a reference, or those its reference selects (named
//!   by the destination's reference, if any). They replace the entries of
//!   the same reference; the destination's other entries stay.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::{reachable, BlobData, NewLayout};
use crate::destination::IndexUpdate;
use crate::error::Result;
use crate::image::files::ANNOTATION_REF_NAME;
use crate::image::parse;
use crate::image::{Image, ImageRef};
use crate::oci::Index;

/// What to add to the layout at `dir`, and how its `index.json` changes.
pub(super) fn prepare(
    layout: NewLayout,
    source: &dyn Image,
    src: &ImageRef,
    dir: &Path,
    dest_ref: Option<&str>,
) -> Result<(NewLayout, IndexUpdate)> {
    let same_dir = match src {
        ImageRef::Layout { dir: s, .. } => match (fs::canonicalize(s), fs::canonicalize(dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    };
    let Some(r) = source.reference() else {
        let update = if same_dir && dest_ref.is_none() {
            IndexUpdate::Replace {
                expect: source.index_json()?.into_owned(),
            }
        } else {
            IndexUpdate::Merge
        };
        return Ok((layout, update));
    };
    // The plan keeps every entry, one for one; keep the selected ones.
    let top = parse::index(&source.index_json()?, "index.json")?.value;
    let new = parse::index(&layout.index_json, "index.json")?.value;
    let kept: Vec<_> = new
        .manifests
        .iter()
        .zip(&top.manifests)
        .filter(|(_, old)| old.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(r))
        .map(|(e, _)| e.clone())
        .collect();
    let written: BTreeMap<String, Vec<u8>> = layout
        .blobs
        .iter()
        .filter_map(|(d, (_, data))| match data {
            BlobData::Bytes(b) => Some((d.clone(), b.clone())),
            BlobData::Stored => None,
        })
        .collect();
    let blobs = reachable(source, &kept, &written)?;
    let index_json = Index {
        manifests: kept,
        ..new
    }
    .to_json()
    .into_bytes();
    let layout = NewLayout {
        blobs,
        index_json,
        manifest_json: layout.manifest_json,
    };
    Ok((layout, IndexUpdate::Merge))
}
