//! Files named by untrusted input: an OCI layout being read, a `case.json`
//! and the files it names, a layout directory being added to.
//!
//! Every read checks the file type on the opened file (so a name swapped
//! after a check changes nothing) and caps the size before reading:
//!
//! - A file is opened with `O_NONBLOCK`, so a FIFO cannot hang the open, and
//!   then refused unless it is a regular file: no FIFOs, devices or sockets.
//! - Symbolic links are followed; what they point at must be a regular file
//!   like any other. Callers that must stay inside a directory check the
//!   resolved path with [`inside`] first.
//! - A file larger than its limit is refused before any byte is read, and a
//!   file that grows while it is read is cut at the limit and refused.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a file type is called in errors.
fn type_name(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, t: fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file; name a regular file",
            path.display(),
            type_name(t)
        ),
    )
}

/// Opens a regular file for reading and gives its size; anything else is
/// refused without blocking.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(not_regular(path, m.file_type()));
    }
    Ok((f, m.len()))
}

/// The error for a file over its limit.
pub fn too_large(path: &Path, size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} holds {size} bytes, more than the limit of {limit} bytes",
            path.display()
        ),
    )
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (f, size) = open_regular(path)?;
    if size > limit {
        return Err(too_large(path, size, limit));
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(path, buf.len() as u64, limit));
    }
    Ok(buf)
}

/// Like [`read_capped`], but a missing file is `None`.
pub fn read_capped_opt(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        _ => read_capped(path, limit).map(Some),
    }
}

/// `path` with `..` and symbolic links resolved, if that lies inside the
/// (already resolved) directory `root`; an error naming both otherwise.
pub fn inside(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let resolved = fs::canonicalize(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {}: {e}", path.display())))?;
    if resolved != root && resolved.starts_with(root) {
        return Ok(resolved);
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} resolves to {}, outside {}; name a file inside that directory",
            path.display(),
            resolved.display(),
            root.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"12345").unwrap();
        assert_eq!(read_capped(&f, 5).unwrap(), b"12345");
        let err = read_capped(&f, 4).unwrap_err().to_string();
        assert!(
            err.contains("5 bytes") && err.contains("limit of 4"),
            "{err}"
        );

        // A FIFO is refused at once instead of waiting for a writer.
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let err = read_capped(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
        let err = read_capped(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("character device"), "{err}");

        // Symbolic links are followed; the target's type is what counts.
        let link = dir.path().join("zero");
        symlink("/dev/zero", &link).unwrap();
        assert!(read_capped(&link, 1 << 20).is_err());
        let good = dir.path().join("good");
        symlink(&f, &good).unwrap();
        assert_eq!(read_capped(&good, 5).unwrap(), b"12345");
        assert!(read_capped(dir.path(), 5)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        assert_eq!(
            read_capped_opt(&dir.path().join("absent"), 5).unwrap(),
            None
        );
    }

    #[test]
    fn inside_resolves_dots_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap().join("case");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/a"), b"a").unwrap();
        fs::write(dir.path().join("secret"), b"s").unwrap();
        assert_eq!(
            inside(&root, &root.join("sub/../sub/a")).unwrap(),
            root.join("sub/a")
        );
        assert!(inside(&root, &root.join("../secret")).is_err());
        symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let err = inside(&root, &root.join("link")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(
            inside(&root, &root).is_err(),
            "the directory itself is not inside"
        );
    }
}
