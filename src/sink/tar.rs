//! A tar writer that gives the bytes of Go's `archive/tar` for the entries
//! an OCI layout needs: USTAR headers, uid/gid 0, mtime 0, no PAX or GNU
//! records, and exactly two zero blocks at the end.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// Largest size a USTAR size field holds (11 octal digits).
const MAX_USTAR_SIZE: u64 = 0o77777777777;

fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

fn header(name: &str, mode: u32, size: u64, typeflag: u8) -> io::Result<[u8; BLOCK]> {
    if name.len() > 100 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry name too long: {name}"),
        ));
    }
    if size > MAX_USTAR_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry {name} is larger than 8 GiB"),
        ));
    }
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut b[100..108], mode as u64);
    octal(&mut b[108..116], 0);
    octal(&mut b[116..124], 0);
    octal(&mut b[124..136], size);
    octal(&mut b[136..148], 0);
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|x| *x as u64).sum();
    octal(&mut b[148..155], sum);
    b[155] = b' ';
    Ok(b)
}

pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// A directory entry; `name` ends with `/`.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.out.write_all(&header(name, 0o755, 0, b'5')?)
    }

    /// A file entry from bytes.
    pub fn file_bytes(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.file(name, mode, data.len() as u64, &mut &data[..], &mut |_| {})
    }

    /// A file entry streamed from a reader that must yield exactly `size`
    /// bytes; `progress` sees the running count.
    pub fn file(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        r: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        self.out.write_all(&header(name, mode, size, b'0')?)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        let mut last_report = 0u64;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            done += n as u64;
            if done > size {
                break;
            }
            self.out.write_all(&buf[..n])?;
            if done - last_report >= 8 << 20 {
                last_report = done;
                progress(done);
            }
        }
        if done != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: expected {size} bytes, the source has {done}"),
            ));
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&vec![0u8; pad])?;
        progress(done);
        Ok(())
    }

    /// Writes the two zero blocks that end the archive.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_go() {
        let h = header("blobs/", 0o755, 0, b'5').unwrap();
        assert_eq!(&h[100..108], b"0000755\0");
        assert_eq!(&h[124..136], b"00000000000\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert_eq!(h[155], b' ');
        assert_eq!(h[154], 0);
        let mut w = TarWriter::new(Vec::new());
        w.file_bytes("a", 0o444, b"xyz").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 512 * 4);
    }
}
