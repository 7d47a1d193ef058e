//! Where the output of an export or a conversion goes: nowhere, stdout, a
//! tar file, or an OCI layout directory.
//!
//! A destination is never left half-written: output goes to a temporary
//! file or directory beside it and is renamed into place only on success.
//! A layout directory that exists is added to, never replaced
//! ([`layout_dir`]).
//!
//! Why a module of its own: the CLI's `export` and `convert` both write
//! through it, and neither should import the other (or the client) for it.
//! A conversion hands it an image ([`crate::sink::Sink`]); an export's
//! client hands it the layout tar the server wrote through the same sink.

pub mod layout_dir;
pub mod untar;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::image::Image;
use crate::progress::Progress;
use crate::sink::{Sink, TarSink};

pub use layout_dir::IndexUpdate;
use untar::Untar;

/// Where the export output goes.
pub enum Destination {
    /// Nowhere (the `image` exporter writes no archive).
    Discard,
    Stdout(io::BufWriter<io::Stdout>),
    /// A tar file, written beside its final path.
    File {
        tmp: tempfile::NamedTempFile,
        dest: PathBuf,
    },
    /// An OCI layout directory, unpacked beside its final path and then
    /// added to it.
    Dir {
        untar: Box<Untar>,
        tmp: tempfile::TempDir,
        dest: PathBuf,
        update: IndexUpdate,
    },
}

impl Destination {
    /// Prepares `dest`; `as_dir` unpacks the tar into a directory instead
    /// (added to an existing layout there, see [`layout_dir`]).
    pub fn create(dest: &str, as_dir: bool) -> io::Result<Destination> {
        Self::create_with(dest, as_dir, IndexUpdate::Merge)
    }

    /// Prepares the layout directory `dest`, whose `index.json` gets the
    /// new one as `update` says. A directory that cannot take a layout is
    /// refused here, before anything is written.
    pub fn create_layout(dest: &str, update: IndexUpdate) -> io::Result<Destination> {
        Self::create_with(dest, true, update)
    }

    fn create_with(dest: &str, as_dir: bool, update: IndexUpdate) -> io::Result<Destination> {
        if dest == "-" {
            if as_dir {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "tar=false needs a directory as dest, not stdout",
                ));
            }
            return Ok(Destination::Stdout(io::BufWriter::new(io::stdout())));
        }
        let dest = PathBuf::from(dest);
        if as_dir {
            layout_dir::check_dest(&dest)?;
        } else if dest.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a directory: name a file for the archive, or add tar=false to write an OCI layout into it",
            ));
        }
        let parent = existing_parent(&dest)?;
        if as_dir {
            let tmp = tempfile::Builder::new()
                .prefix(".oxport-")
                .tempdir_in(&parent)?;
            let untar = Box::new(Untar::new(tmp.path().to_path_buf()));
            Ok(Destination::Dir {
                untar,
                tmp,
                dest,
                update,
            })
        } else {
            let tmp = tempfile::Builder::new()
                .prefix(".oxport-")
                .tempfile_in(&parent)?;
            Ok(Destination::File { tmp, dest })
        }
    }

    /// Moves the finished output into place. Dropping a destination without
    /// calling this removes the temporary output.
    pub fn finish(self) -> io::Result<()> {
        match self {
            Destination::Discard => Ok(()),
            Destination::Stdout(mut w) => w.flush(),
            Destination::File { tmp, dest } => {
                tmp.as_file().sync_all()?;
                tmp.persist(&dest).map_err(|e| e.error)?;
                set_mode(&dest, 0o644)
            }
            Destination::Dir {
                untar,
                tmp,
                dest,
                update,
            } => {
                untar.finish()?;
                let staged = tmp.keep();
                layout_dir::add_layout(&staged, &dest, &update).inspect_err(|_| {
                    let _ = fs::remove_dir_all(&staged);
                })
            }
        }
    }
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Destination::Discard => Ok(buf.len()),
            Destination::Stdout(w) => w.write(buf),
            Destination::File { tmp, .. } => tmp.write(buf),
            Destination::Dir { untar, .. } => untar.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Destination::Discard => Ok(()),
            Destination::Stdout(w) => w.flush(),
            Destination::File { tmp, .. } => tmp.flush(),
            Destination::Dir { untar, .. } => untar.flush(),
        }
    }
}

/// A destination is a sink of images: the layout tar written to a file or
/// stdout, or unpacked into a layout directory. The output appears only at
/// [`Destination::finish`].
impl Sink for Destination {
    fn write(&mut self, image: &dyn Image, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        TarSink::new(self).write(image, progress)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = existing_parent(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".oxport-")
        .tempfile_in(&parent)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    set_mode(path, 0o644)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The directory `path` goes into, which must exist: as with buildctl, a
/// mistyped path is an error, not a tree of new directories.
pub fn existing_parent(path: &Path) -> io::Result<PathBuf> {
    let parent = parent_dir(path);
    if !parent.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the directory {} does not exist (create it first)",
                parent.display()
            ),
        ));
    }
    Ok(parent)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let mut d = Destination::create(dest.to_str().unwrap(), false).unwrap();
        d.write_all(b"partial").unwrap();
        drop(d);
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut d = Destination::create(dest.to_str().unwrap(), false).unwrap();
        d.write_all(b"whole").unwrap();
        d.finish().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
    }
}
