//! An OCI layout directory as a destination (`tar=false`, `convert … oci:DIR`):
//! the new layout is added to what the directory holds, as skopeo adds to a
//! layout.
//!
//! - A directory that does not exist is created whole: the unpacked layout
//!   is renamed into place.
//! - An empty directory or an OCI layout (it has an `oci-layout` file) keeps
//!   everything it holds. The new `index.json` entries replace the entries
//!   of the same `org.opencontainers.image.ref.name` (an unnamed entry, the
//!   unnamed one of the same digest) and are added after the others; blobs
//!   already there are kept, new ones are added. A Docker `manifest.json`
//!   is merged likewise: the new images take their tags from older ones.
//! - Any other directory, and anything that is not a directory, is refused
//!   before anything is written.
//!
//! Blobs go first, each synced and renamed into place; `index.json` goes
//! last, through a temporary file and a rename. A failure before that
//! rename leaves the previous `index.json`, and so the previous images,
//! as they were (new blobs may remain, unreferenced). Writers that use this
//! module take an exclusive lock on the directory (`flock`) for the update.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use serde_json::Value;

use crate::image::files::{ANNOTATION_REF_NAME, OCI_LAYOUT};
use crate::image::MAX_JSON_BLOB;
use crate::untrusted;

use super::{parent_dir, set_mode};

/// How the new `index.json` enters the destination's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexUpdate {
    /// Add the new entries (skopeo's rule, see the module documentation).
    Merge,
    /// The new `index.json` describes the whole layout (a conversion in
    /// place of every entry); it replaces the destination's, provided that
    /// is still `expect` (the bytes the conversion read).
    Replace { expect: Vec<u8> },
}

/// What a destination directory is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    Absent,
    Empty,
    Layout,
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, msg)
}

/// Checks that `dest` can take a layout, changing nothing.
pub fn check_dest(dest: &Path) -> io::Result<DestKind> {
    let m = match fs::metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DestKind::Absent),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dest.display()))),
        Ok(m) => m,
    };
    if !m.is_dir() {
        return Err(refused(format!(
            "{} exists and is not a directory; name a directory for tar=false or oci:",
            dest.display()
        )));
    }
    let marker = dest.join("oci-layout");
    if fs::symlink_metadata(&marker).is_err() {
        if fs::read_dir(dest)?.next().is_none() {
            return Ok(DestKind::Empty);
        }
        return Err(refused(format!(
            "{} is not empty and is not an OCI layout (it has no oci-layout file); \
             name a new or empty directory, or an existing OCI layout",
            dest.display()
        )));
    }
    let bytes = untrusted::read_capped(&marker, 64 << 10)?;
    let version = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["imageLayoutVersion"].as_str().map(String::from));
    if version.as_deref() != Some("1.0.0") {
        return Err(refused(format!(
            "{} does not hold imageLayoutVersion 1.0.0; oxport adds only to OCI layouts of that version",
            marker.display()
        )));
    }
    Ok(DestKind::Layout)
}

/// Adds the layout unpacked in `staged` to `dest`; `staged` is consumed
/// on success.
pub fn add_layout(staged: &Path, dest: &Path, update: &IndexUpdate) -> io::Result<()> {
    if check_dest(dest)? == DestKind::Absent {
        set_mode(staged, 0o755)?;
        match fs::rename(staged, dest) {
            Ok(()) => return Ok(()),
            // Created meanwhile: add to it like to any other.
            Err(_) if dest.exists() => {}
            Err(e) => return Err(e),
        }
    }
    let _lock = Lock::exclusive(dest)?;
    check_dest(dest)?;
    let new_index = fs::read(staged.join("index.json"))?;
    let old_index = read_dest_json(dest, "index.json")?;
    let index = match update {
        IndexUpdate::Merge => match &old_index {
            Some(old) => merge_index(old, &new_index, dest)?,
            None => new_index,
        },
        IndexUpdate::Replace { expect } => {
            if old_index.as_ref() != Some(expect) {
                return Err(refused(format!(
                    "{}: index.json changed while the conversion ran; run it again",
                    dest.display()
                )));
            }
            new_index
        }
    };
    let manifest = match fs::read(staged.join("manifest.json")) {
        Ok(new) => Some(match read_dest_json(dest, "manifest.json")? {
            Some(old) => merge_docker_manifest(&old, &new, dest)?,
            None => new,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };

    move_blobs(&staged.join("blobs"), &dest.join("blobs"))?;
    if fs::symlink_metadata(dest.join("oci-layout")).is_err() {
        write_file(dest, "oci-layout", OCI_LAYOUT, 0o444)?;
    }
    if let Some(m) = manifest {
        write_file(dest, "manifest.json", &m, 0o644)?;
    }
    write_file(dest, "index.json", &index, 0o644)?;
    fs::remove_dir_all(staged)
}

/// A top-level JSON file of the destination, read as untrusted input.
fn read_dest_json(dest: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    untrusted::read_capped_opt(&dest.join(name), MAX_JSON_BLOB)
}

fn bad_json(dest: &Path, name: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {what}; oxport leaves the layout as it is: fix or remove that file",
            dest.join(name).display()
        ),
    )
}

/// The destination's `index.json` with the new entries added.
fn merge_index(old: &[u8], new: &[u8], dest: &Path) -> io::Result<Vec<u8>> {
    let mut old_v: Value =
        serde_json::from_slice(old).map_err(|e| bad_json(dest, "index.json", e))?;
    let Some(obj) = old_v.as_object_mut() else {
        return Err(bad_json(dest, "index.json", "not a JSON object"));
    };
    let old_entries = match obj.remove("manifests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad_json(dest, "index.json", "manifests is not an array")),
    };
    if old_entries.is_empty() {
        return Ok(new.to_vec());
    }
    let new_v: Value = serde_json::from_slice(new)?;
    let new_entries = new_v["manifests"].as_array().cloned().unwrap_or_default();
    obj.insert(
        "manifests".into(),
        Value::Array(merge_entries(old_entries, new_entries)),
    );
    Ok(serde_json::to_vec(&old_v)?)
}

/// What makes two entries the same image for the merge: the ref name, or
/// for an unnamed entry its digest.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Ref(String),
    Unnamed(String),
}

fn key(e: &Value) -> Key {
    match e["annotations"][ANNOTATION_REF_NAME].as_str() {
        Some(r) if !r.is_empty() => Key::Ref(r.to_string()),
        _ => Key::Unnamed(e["digest"].as_str().unwrap_or_default().to_string()),
    }
}

/// Old entries in their order, each replaced in place by the new entries of
/// its key; the remaining new entries after them.
fn merge_entries(old: Vec<Value>, new: Vec<Value>) -> Vec<Value> {
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, e) in new.iter().enumerate() {
        by_key.entry(key(e)).or_default().push(i);
    }
    let mut placed = vec![false; new.len()];
    let mut out = Vec::with_capacity(old.len() + new.len());
    for e in old {
        match by_key.get(&key(&e)) {
            None => out.push(e),
            Some(ids) => {
                for &i in ids {
                    if !placed[i] {
                        placed[i] = true;
                        out.push(new[i].clone());
                    }
                }
            }
        }
    }
    out.extend(
        new.into_iter()
            .zip(placed)
            .filter(|(_, p)| !p)
            .map(|(e, _)| e),
    );
    out
}

/// Docker's `manifest.json` with the new images added: an old image with
/// the same config is replaced, and old images lose the tags the new ones
/// take (an image left without any of its tags goes).
fn merge_docker_manifest(old: &[u8], new: &[u8], dest: &Path) -> io::Result<Vec<u8>> {
    let old: Value = serde_json::from_slice(old).map_err(|e| bad_json(dest, "manifest.json", e))?;
    let Value::Array(old) = old else {
        return Err(bad_json(dest, "manifest.json", "not a JSON array"));
    };
    let Value::Array(new) = serde_json::from_slice::<Value>(new)? else {
        return Err(io::Error::other("the new manifest.json is not an array"));
    };
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let configs: HashSet<&str> = new.iter().filter_map(|e| e["Config"].as_str()).collect();
    let tags: HashSet<String> = new.iter().flat_map(|e| strs(&e["RepoTags"])).collect();
    let mut out = Vec::with_capacity(old.len() + new.len());
    for mut e in old {
        if e["Config"].as_str().is_some_and(|c| configs.contains(c)) {
            continue;
        }
        let had = strs(&e["RepoTags"]);
        if !had.is_empty() {
            let kept: Vec<Value> = had
                .into_iter()
                .filter(|t| !tags.contains(t))
                .map(Value::String)
                .collect();
            if kept.is_empty() {
                continue;
            }
            e["RepoTags"] = Value::Array(kept);
        }
        out.push(e);
    }
    out.extend(new.iter().cloned());
    Ok(serde_json::to_vec(&Value::Array(out))?)
}

/// Moves every `blobs/<alg>/<hex>` of `from` into `to`, keeping the blobs
/// `to` already holds (a regular file of the same size).
fn move_blobs(from: &Path, to: &Path) -> io::Result<()> {
    let algs = match fs::read_dir(from) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    fs::create_dir_all(to)?;
    for alg in algs {
        let alg = alg?;
        if !alg.file_type()?.is_dir() {
            continue;
        }
        let dir = to.join(alg.file_name());
        fs::create_dir_all(&dir)?;
        for blob in fs::read_dir(alg.path())? {
            let blob = blob?;
            let target = dir.join(blob.file_name());
            let len = blob.metadata()?.len();
            if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == len) {
                continue;
            }
            File::open(blob.path())?.sync_all()?;
            move_file(&blob.path(), &target)?;
        }
        sync_dir(&dir)?;
    }
    sync_dir(to)
}

/// Renames `from` to `to`, or copies it through a temporary file beside
/// `to` when they are on different file systems.
fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let mut tmp = tempfile::Builder::new()
                .prefix(".oxport-")
                .tempfile_in(parent_dir(to))?;
            io::copy(&mut File::open(from)?, &mut tmp)?;
            tmp.as_file()
                .set_permissions(fs::metadata(from)?.permissions())?;
            tmp.as_file().sync_all()?;
            tmp.persist(to).map_err(|e| e.error)?;
            Ok(())
        }
        r => r,
    }
}

/// Writes `dir/name` through a synced temporary file and a rename.
fn write_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.oxport-"))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive `flock` on a directory, released when dropped.
struct Lock {
    _dir: File,
}

impl Lock {
    fn exclusive(dir: &Path) -> io::Result<Lock> {
        let f = File::open(dir)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot lock {}: {e}", dir.display()),
            ));
        }
        Ok(Lock { _dir: f })
    }
}

#[cfg(test)]
#[path = "layout_dir_tests.rs"]
mod tests;
