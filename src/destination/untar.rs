//! Unpacks a USTAR stream into a directory as the bytes arrive.
//!
//! It is the `tar=false` path: the server always streams a layout tar, and
//! the client turns it into an OCI layout directory without holding more
//! than one 512-byte header in memory. Only what an OCI layout tar holds is
//! accepted: regular files and directories with relative, clean names, and
//! the PAX extended headers Go's `archive/tar` puts before entries of 8 GiB
//! and more (their `size` and `path` records apply to the next entry).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::ustar::{clean_path, read_header, Pending};

const BLOCK: usize = 512;

/// The largest PAX extended header accepted (Go's `maxSpecialFileSize`).
const MAX_PAX_SIZE: u64 = 1 << 20;

enum State {
    Header,
    Data {
        file: File,
        left: u64,
        pad: u64,
    },
    Skip {
        left: u64,
    },
    /// The records of a PAX extended header, collected whole.
    Pax {
        data: Vec<u8>,
        left: u64,
        pad: u64,
    },
    End,
}

pub struct Untar {
    root: PathBuf,
    header: Vec<u8>,
    state: State,
    pax: Pending,
}

impl Untar {
    pub fn new(root: PathBuf) -> Self {
        Untar {
            root,
            header: Vec::with_capacity(BLOCK),
            state: State::Header,
            pax: Pending::default(),
        }
    }

    /// Checks that the stream ended on an entry boundary.
    pub fn finish(self) -> io::Result<()> {
        match self.state {
            State::Header | State::End if self.header.is_empty() => Ok(()),
            _ => Err(bad("the tar stream ended inside an entry")),
        }
    }

    fn on_header(&mut self) -> io::Result<()> {
        let h = std::mem::take(&mut self.header);
        if h.iter().all(|&b| b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let entry = read_header(&h, std::mem::take(&mut self.pax))?;
        let (name, size) = (entry.name, entry.size);
        if entry.typeflag == b'x' {
            if size > MAX_PAX_SIZE {
                return Err(bad(&format!(
                    "PAX header {name} of {size} bytes (the limit is {MAX_PAX_SIZE})"
                )));
            }
            self.state = State::Pax {
                data: Vec::with_capacity(size as usize),
                left: size,
                pad: round_up(size) - size,
            };
            return Ok(());
        }
        let rel = clean_path(&name)?;
        let mode = entry.mode & 0o777;
        let path = self.root.join(&rel);
        match entry.typeflag {
            b'5' => {
                fs::create_dir_all(&path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))?;
                self.state = State::Skip {
                    left: round_up(size),
                };
            }
            b'0' | 0 => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let file = File::create(&path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                if size == 0 {
                    self.state = State::Header;
                    return Ok(());
                }
                self.state = State::Data {
                    file,
                    left: size,
                    pad: round_up(size) - size,
                };
            }
            t => {
                return Err(bad(&format!(
                    "unsupported tar entry type {:?} for {name}",
                    t as char
                )))
            }
        }
        Ok(())
    }
}

impl Write for Untar {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.state {
            State::End => Ok(buf.len()),
            State::Header => {
                let n = buf.len().min(BLOCK - self.header.len());
                self.header.extend_from_slice(&buf[..n]);
                if self.header.len() == BLOCK {
                    self.on_header()?;
                }
                Ok(n)
            }
            State::Data { file, left, pad } => {
                let n = buf.len().min(*left as usize);
                file.write_all(&buf[..n])?;
                *left -= n as u64;
                if *left == 0 {
                    let pad = *pad;
                    self.state = State::Skip { left: pad };
                }
                Ok(n)
            }
            State::Pax { data, left, pad } => {
                let n = buf.len().min(*left as usize);
                data.extend_from_slice(&buf[..n]);
                *left -= n as u64;
                if *left == 0 {
                    self.pax = Pending::from_pax(data)?;
                    let pad = *pad;
                    self.state = State::Skip { left: pad };
                }
                Ok(n)
            }
            State::Skip { left } => {
                if *left == 0 {
                    self.state = State::Header;
                    return self.write(buf);
                }
                let n = buf.len().min(*left as usize);
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Header;
                }
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal USTAR header, as Go's archive/tar writes it.
    fn header(name: &str, typeflag: u8, mode: u32, size: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn tar(entries: &[(&str, u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, t, mode, data) in entries {
            out.extend_from_slice(&header(name, *t, *mode, data.len() as u64));
            out.extend_from_slice(data);
            out.resize(round_up(out.len() as u64) as usize, 0);
        }
        out.extend_from_slice(&[0u8; BLOCK * 2]);
        out
    }

    #[test]
    fn unpacks_in_any_write_sizes() {
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
        let bytes = tar(&[
            ("blobs/", b'5', 0o755, b""),
            ("blobs/sha256/", b'5', 0o755, b""),
            ("blobs/sha256/aa", b'0', 0o444, &big),
            ("empty", b'0', 0o644, b""),
            ("index.json", b'0', 0o644, b"{}"),
        ]);
        for step in [1, 7, 512, 1000, bytes.len()] {
            let dir = tempfile::tempdir().unwrap();
            let mut u = Untar::new(dir.path().to_path_buf());
            for part in bytes.chunks(step) {
                u.write_all(part).unwrap();
            }
            u.finish().unwrap();
            assert_eq!(fs::read(dir.path().join("blobs/sha256/aa")).unwrap(), big);
            assert_eq!(fs::read(dir.path().join("index.json")).unwrap(), b"{}");
            assert_eq!(fs::read(dir.path().join("empty")).unwrap(), b"");
            let mode = fs::metadata(dir.path().join("blobs/sha256/aa"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o444);
        }
    }

    #[test]
    fn pax_size_records_apply_to_the_next_entry() {
        // What the exporter writes for an entry of 8 GiB or more, here with
        // a small size: a PAX header, then a USTAR header whose size is 0.
        let mut bytes =
            crate::sink::tar::header_blocks("blobs/sha256/big", 0o444, 9 << 30, b'0').unwrap();
        let records = b"11 size=13\n";
        bytes[BLOCK..2 * BLOCK].fill(0);
        bytes[BLOCK..BLOCK + records.len()].copy_from_slice(records);
        bytes[..BLOCK].copy_from_slice(&header(
            "blobs/sha256/PaxHeaders.0/big",
            b'x',
            0,
            records.len() as u64,
        ));
        bytes.extend_from_slice(b"thirteen byte");
        bytes.resize(round_up(bytes.len() as u64) as usize, 0);
        bytes.extend_from_slice(&tar(&[("index.json", b'0', 0o644, b"{}")]));
        for step in [1, 100, bytes.len()] {
            let dir = tempfile::tempdir().unwrap();
            let mut u = Untar::new(dir.path().to_path_buf());
            for part in bytes.chunks(step) {
                u.write_all(part).unwrap();
            }
            u.finish().unwrap();
            let got = fs::read(dir.path().join("blobs/sha256/big")).unwrap();
            assert_eq!(got, b"thirteen byte");
            assert_eq!(fs::read(dir.path().join("index.json")).unwrap(), b"{}");
            assert!(!dir.path().join("blobs/sha256/PaxHeaders.0").exists());
        }
    }

    #[test]
    fn refuses_unsafe_names_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut u = Untar::new(dir.path().to_path_buf());
        let err = u
            .write_all(&tar(&[("../evil", b'0', 0o644, b"x")]))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let bytes = tar(&[("f", b'0', 0o644, b"hello")]);
        let mut u = Untar::new(dir.path().to_path_buf());
        u.write_all(&bytes[..BLOCK + 2]).unwrap();
        assert!(u.finish().is_err());
    }
}
