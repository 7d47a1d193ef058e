//! A tar writer that gives the bytes of Go's `archive/tar` for the entries
//! an OCI layout needs (BuildKit writes its archives with it): USTAR headers,
//! uid/gid 0, mtime 0, and exactly two zero blocks at the end. An entry of
//! 8 GiB or more, which a USTAR size field cannot hold, gets a PAX extended
//! header with a `size` record first, as Go writes it.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// Largest size a USTAR size field holds (11 octal digits): 8 GiB - 1.
const MAX_USTAR_SIZE: u64 = 0o77777777777;

fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

/// One USTAR header block; a size the field cannot hold is written as 0
/// (Go's "last resort": the PAX record before it carries the real size).
/// Go fills the device numbers of entries, not of its PAX headers.
fn ustar(name: &str, mode: u32, size: u64, typeflag: u8) -> [u8; BLOCK] {
    let mut b = ustar_without_devices(name, mode, size, typeflag);
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    checksum(&mut b);
    b
}

fn ustar_without_devices(name: &str, mode: u32, size: u64, typeflag: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut b[100..108], mode as u64);
    octal(&mut b[108..116], 0);
    octal(&mut b[116..124], 0);
    octal(
        &mut b[124..136],
        if size > MAX_USTAR_SIZE { 0 } else { size },
    );
    octal(&mut b[136..148], 0);
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    checksum(&mut b);
    b
}

fn checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|x| *x as u64).sum();
    octal(&mut b[148..155], sum);
    b[155] = b' ';
}

/// A PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts itself
/// (Go's `formatPAXRecord`).
fn pax_record(key: &str, value: &str) -> String {
    let mut size = key.len() + value.len() + 3;
    size += size.to_string().len();
    let mut record = format!("{size} {key}={value}\n");
    if record.len() != size {
        record = format!("{} {key}={value}\n", record.len());
    }
    record
}

/// The name Go gives the PAX header of `name`: `dir/PaxHeaders.0/file`,
/// cut to 100 bytes, without a trailing slash.
fn pax_name(name: &str) -> String {
    let (dir, file) = match name.rfind('/') {
        Some(i) => name.split_at(i + 1),
        None => ("", name),
    };
    let mut n = format!("{dir}PaxHeaders.0/{file}");
    n.truncate(100);
    n.trim_end_matches('/').to_string()
}

/// The header blocks of one entry: a USTAR header, or for 8 GiB and more
/// a PAX extended header (`x`, its records padded to a block) and then the
/// USTAR header, byte for byte as Go's `archive/tar` writes them.
pub fn header_blocks(name: &str, mode: u32, size: u64, typeflag: u8) -> io::Result<Vec<u8>> {
    if name.len() > 100 || !name.is_ascii() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry name {name:?} is not ASCII of at most 100 bytes"),
        ));
    }
    let mut out = Vec::with_capacity(3 * BLOCK);
    if size > MAX_USTAR_SIZE {
        let records = pax_record("size", &size.to_string());
        let len = records.len() as u64;
        out.extend_from_slice(&ustar_without_devices(&pax_name(name), 0, len, b'x'));
        out.extend_from_slice(records.as_bytes());
        out.resize(2 * BLOCK, 0);
    }
    out.extend_from_slice(&ustar(name, mode, size, typeflag));
    Ok(out)
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
        self.out.write_all(&header_blocks(name, 0o755, 0, b'5')?)
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
        self.out
            .write_all(&header_blocks(name, mode, size, b'0')?)?;
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
        let h = header_blocks("blobs/", 0o755, 0, b'5').unwrap();
        assert_eq!(h.len(), 512);
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

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("size", "8589934592"), "19 size=8589934592\n");
        // 4 + 91 + 3 = 98 bytes, plus two digits is 100, which has three.
        let v = "1".repeat(91);
        let r = pax_record("size", &v);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with("101 size="));
        assert_eq!(pax_name("blobs/sha256/ab"), "blobs/sha256/PaxHeaders.0/ab");
        assert_eq!(pax_name("index.json"), "PaxHeaders.0/index.json");
    }

    #[test]
    fn sizes_from_8_gib_get_a_pax_size_record() {
        let name = format!("blobs/sha256/{}", "a".repeat(64));
        let below = header_blocks(&name, 0o444, MAX_USTAR_SIZE, b'0').unwrap();
        assert_eq!(below.len(), BLOCK);
        assert_eq!(&below[124..136], b"77777777777\0");
        let at = header_blocks(&name, 0o444, 8 << 30, b'0').unwrap();
        assert_eq!(at.len(), 3 * BLOCK);
        assert_eq!(at[156], b'x');
        assert!(at[..100].starts_with(b"blobs/sha256/PaxHeaders.0/aaaa"));
        assert_eq!(&at[124..136], b"00000000023\0", "19 bytes of records");
        assert!(at[BLOCK..2 * BLOCK].starts_with(b"19 size=8589934592\n\0"));
        assert_eq!(&at[2 * BLOCK + 124..2 * BLOCK + 136], b"00000000000\0");
        assert_eq!(&at[2 * BLOCK..2 * BLOCK + name.len()], name.as_bytes());
    }

    /// Yields `left` bytes without touching the buffer (its content does not matter).
    struct Unwritten(u64);
    impl Read for Unwritten {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            self.0 -= n as u64;
            Ok(n)
        }
    }

    /// Keeps the first 4 blocks and counts the rest.
    #[derive(Default)]
    struct Head(Vec<u8>, u64);
    impl Write for Head {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let keep = (4 * BLOCK).saturating_sub(self.0.len()).min(buf.len());
            self.0.extend_from_slice(&buf[..keep]);
            self.1 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_entry_over_8_gib_streams_whole() {
        let size = (8u64 << 30) + 1;
        let mut w = TarWriter::new(Head::default());
        let mut seen = 0;
        w.file(
            "blobs/sha256/big",
            0o444,
            size,
            &mut Unwritten(size),
            &mut |n| seen = n,
        )
        .unwrap();
        let out = w.finish().unwrap();
        assert_eq!(seen, size);
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        assert_eq!(out.1, 3 * BLOCK as u64 + padded + 2 * BLOCK as u64);
        let want = header_blocks("blobs/sha256/big", 0o444, size, b'0').unwrap();
        assert_eq!(&out.0[..3 * BLOCK], &want[..]);
    }
}
