//! The one tar header reader: the fields of a USTAR header block
//! (NUL-terminated strings, octal numbers, the checksum, the entry name with
//! its `prefix`, a safe relative path made of it), PAX extended header
//! records, and a whole header read with what the extended headers before it
//! said (`read_header`).
//!
//! Why a module of its own: the `tar=false` unpacker (bytes pushed in as
//! they arrive) and the archive reader of existing images (a file read in
//! place by offset) walk a tar differently but read its headers the same
//! way; neither should have to import the other's module to do it. The
//! `tar` crate does not fit them: it reads PAX and GNU long-name records
//! whole whatever their size, and it only pulls from a reader.

use std::io;
use std::path::{Component, Path, PathBuf};

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// The bytes of a header field up to its first NUL.
pub fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A numeric field: octal digits, padded with spaces or NULs.
pub fn octal(b: &[u8]) -> io::Result<u64> {
    let s = std::str::from_utf8(cstr(b)).map_err(|_| bad("bad number in tar header"))?;
    let s = s.trim_matches(' ');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| bad("bad number in tar header"))
}

/// Checks the header checksum (the sum of all bytes, the checksum field
/// counted as spaces).
pub fn check_sum(h: &[u8]) -> io::Result<()> {
    let want = octal(&h[148..156])?;
    let got: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u64
            } else {
                b as u64
            }
        })
        .sum();
    if want != got {
        return Err(bad("tar header checksum mismatch"));
    }
    Ok(())
}

/// The entry name: `prefix/name` for USTAR headers, `name` otherwise.
pub fn entry_name(h: &[u8]) -> io::Result<String> {
    let name = cstr(&h[0..100]);
    let prefix = if &h[257..262] == b"ustar" {
        cstr(&h[345..500])
    } else {
        &[]
    };
    let full = if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    };
    String::from_utf8(full).map_err(|_| bad("tar entry name is not UTF-8"))
}

/// A relative path with no `..`, no root, and something left after cleaning.
pub fn clean_path(name: &str) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(bad(&format!("unsafe tar entry name {name:?}"))),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad(&format!("empty tar entry name {name:?}")));
    }
    Ok(out)
}

/// What the PAX and GNU long-name headers before an entry say about it.
#[derive(Debug, Default)]
pub struct Pending {
    pub path: Option<String>,
    pub size: Option<u64>,
}

impl Pending {
    /// The `path` and `size` records of a PAX extended header
    /// (`"<len> <key>=<value>\n"` each; other keys are ignored). A malformed
    /// record is an error, as in Go's `archive/tar`.
    pub fn from_pax(mut data: &[u8]) -> io::Result<Pending> {
        let mut out = Pending::default();
        while !data.is_empty() {
            let malformed = || bad("malformed PAX record");
            let sp = data.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(malformed)?;
            if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(malformed());
            }
            let record = std::str::from_utf8(&data[sp + 1..len - 1]).map_err(|_| malformed())?;
            let (key, value) = record.split_once('=').ok_or_else(malformed)?;
            match key {
                "size" => {
                    out.size = Some(value.parse().map_err(|_| bad("bad PAX size record"))?);
                }
                "path" => out.path = Some(value.to_string()),
                _ => {}
            }
            data = &data[len..];
        }
        Ok(out)
    }
}

/// A header block, read: the entry's name and the size of the data that
/// follows it, with `pending` applied (a PAX `path` or GNU long name, a PAX
/// `size`). Extended headers themselves (`x`, `g`, `L`) keep their own name
/// and size; `pending` then applies to the entry after them.
#[derive(Debug)]
pub struct Header {
    pub name: String,
    pub size: u64,
    pub typeflag: u8,
    pub mode: u32,
}

/// Whether a header of this type describes the entry after it.
fn is_extension(typeflag: u8) -> bool {
    matches!(typeflag, b'x' | b'g' | b'L')
}

/// Reads a header block that is not all zeros: checks its checksum and
/// applies `pending` (see `Header`).
pub fn read_header(h: &[u8], pending: Pending) -> io::Result<Header> {
    check_sum(h)?;
    let typeflag = h[156];
    let own_size = octal(&h[124..136])?;
    let (name, size) = if is_extension(typeflag) {
        (entry_name(h)?, own_size)
    } else {
        let name = match pending.path {
            Some(p) => p,
            None => entry_name(h)?,
        };
        (name, pending.size.unwrap_or(own_size))
    };
    Ok(Header {
        name,
        size,
        typeflag,
        mode: (octal(&h[100..108])? & 0o7777) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_names_and_checksums() {
        assert_eq!(cstr(b"abc\0def"), b"abc");
        assert_eq!(octal(b"0000644\0").unwrap(), 0o644);
        assert_eq!(octal(b"  12 \0").unwrap(), 0o12);
        assert_eq!(octal(b"\0\0").unwrap(), 0);
        assert!(octal(b"9\0").is_err());

        let mut h = [0u8; 512];
        h[..4].copy_from_slice(b"name");
        h[257..262].copy_from_slice(b"ustar");
        h[345..351].copy_from_slice(b"prefix");
        assert_eq!(entry_name(&h).unwrap(), "prefix/name");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        check_sum(&h).unwrap();
        h[0] = b'N';
        assert!(check_sum(&h).is_err());
    }

    #[test]
    fn pax_path_and_size() {
        let data = b"19 path=blobs/x/yy\n13 size=1234\n";
        let p = Pending::from_pax(data).unwrap();
        assert_eq!(p.path.as_deref(), Some("blobs/x/yy"));
        assert_eq!(p.size, Some(1234));
        // A length that covers only the digits and the space (found by the
        // archive fuzz target), one that is too short, and a bad size.
        assert!(Pending::from_pax(b"2 x").is_err());
        assert!(Pending::from_pax(b"3 \n").is_err());
        assert!(Pending::from_pax(b"5 x=1\n").is_err());
        assert!(Pending::from_pax(b"9 size=x\n").is_err());
    }

    #[test]
    fn pending_records_apply_to_entries_not_to_extensions() {
        let mut h = [0u8; 512];
        h[..4].copy_from_slice(b"name");
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(b"00000000012\0");
        h[156] = b'0';
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let pending = || Pending {
            path: Some("long/name".into()),
            size: Some(9 << 30),
        };
        let e = read_header(&h, pending()).unwrap();
        assert_eq!(
            (e.name.as_str(), e.size, e.mode),
            ("long/name", 9 << 30, 0o644)
        );
        let e = read_header(&h, Pending::default()).unwrap();
        assert_eq!((e.name.as_str(), e.size), ("name", 0o12));

        h[156] = b'x';
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let e = read_header(&h, pending()).unwrap();
        assert_eq!((e.name.as_str(), e.size, e.typeflag), ("name", 0o12, b'x'));
    }

    #[test]
    fn clean_paths_stay_relative() {
        assert_eq!(clean_path("./a/b").unwrap(), PathBuf::from("a/b"));
        assert!(clean_path("../evil").is_err());
        assert!(clean_path("/abs").is_err());
        assert!(clean_path("./").is_err());
    }
}
