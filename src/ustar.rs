//! Reading the fields of a USTAR header block: NUL-terminated strings,
//! octal numbers, the checksum, the entry name (with its `prefix`) and a
//! safe relative path made of it.
//!
//! Why a module of its own: the `tar=false` unpacker and the archive reader
//! of existing images both read headers field by field; neither should have
//! to import the other's module to do it.

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
    fn clean_paths_stay_relative() {
        assert_eq!(clean_path("./a/b").unwrap(), PathBuf::from("a/b"));
        assert!(clean_path("../evil").is_err());
        assert!(clean_path("/abs").is_err());
        assert!(clean_path("./").is_err());
    }
}
