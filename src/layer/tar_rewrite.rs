//! Clamps tar header times to an epoch, streaming, as BuildKit's
//! `rewrite-timestamp` does by re-encoding the tar with Go's `archive/tar`.
//!
//! Go's writer re-emits a USTAR header byte for byte apart from the changed
//! time and checksum, and ends the archive with exactly two zero blocks, so
//! headers are patched in place and data blocks copied as they are.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

fn parse_octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256.
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v.checked_mul(256)? + *b as u64;
        }
        return Some(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn write_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| *b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(s.as_bytes());
}

fn read_block(r: &mut dyn Read, buf: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "layer tar ends inside a block",
            ));
        }
        filled += n;
    }
    Ok(true)
}

/// Rewrites PAX time records later than the epoch; returns the new payload
/// (records keep their order) and whether anything changed.
fn rewrite_pax(payload: &[u8], epoch: i64) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(payload.len());
    let mut changed = false;
    let mut rest = payload;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|b| *b == b' ') else {
            out.extend_from_slice(rest);
            break;
        };
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(rest.len())
            .min(rest.len());
        let record = &rest[..len];
        rest = &rest[len..];
        let body = &record[(sp + 1).min(record.len())..];
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        if let Some(eq) = body.iter().position(|b| *b == b'=') {
            let (k, v) = (&body[..eq], &body[eq + 1..]);
            if matches!(k, b"mtime" | b"atime" | b"ctime") {
                let secs: f64 = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0);
                if secs > epoch as f64 {
                    let kv = format!("{}={epoch}\n", String::from_utf8_lossy(k));
                    // The length prefix counts itself.
                    let mut n = kv.len() + 2;
                    while format!("{n} {kv}").len() != n {
                        n += 1;
                    }
                    out.extend_from_slice(format!("{n} {kv}").as_bytes());
                    changed = true;
                    continue;
                }
            }
        }
        out.extend_from_slice(record);
    }
    (out, changed)
}

/// Copies a tar from `r` to `w`, clamping entry times later than `epoch`.
pub fn rewrite(r: &mut dyn Read, w: &mut dyn Write, epoch: i64) -> io::Result<()> {
    let mut block = [0u8; BLOCK];
    let mut data = vec![0u8; 64 * BLOCK];
    loop {
        if !read_block(r, &mut block)? || block.iter().all(|b| *b == 0) {
            break;
        }
        let size = parse_octal(&block[124..136])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad tar header size"))?;
        let typeflag = block[156];
        let mtime = parse_octal(&block[136..148]).unwrap_or(0) as i64;
        if mtime > epoch && epoch >= 0 {
            let s = format!("{:011o}\0", epoch);
            block[136..148].copy_from_slice(s.as_bytes());
            write_checksum(&mut block);
        }
        let padded = size
            .div_ceil(BLOCK as u64)
            .checked_mul(BLOCK as u64)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "tar entry size too large")
            })?;
        if matches!(typeflag, b'x' | b'g') && padded <= 1 << 20 {
            let mut payload = vec![0u8; padded as usize];
            r.read_exact(&mut payload)?;
            let (new, changed) = rewrite_pax(&payload[..size as usize], epoch);
            if changed {
                let s = format!("{:011o}\0", new.len());
                block[124..136].copy_from_slice(s.as_bytes());
                write_checksum(&mut block);
                w.write_all(&block)?;
                let mut padded_new = new;
                padded_new.resize(padded_new.len().div_ceil(BLOCK) * BLOCK, 0);
                w.write_all(&padded_new)?;
            } else {
                w.write_all(&block)?;
                w.write_all(&payload)?;
            }
            continue;
        }
        w.write_all(&block)?;
        let mut left = padded;
        while left > 0 {
            let n = left.min(data.len() as u64) as usize;
            r.read_exact(&mut data[..n])?;
            w.write_all(&data[..n])?;
            left -= n as u64;
        }
    }
    w.write_all(&[0u8; 2 * BLOCK])?;
    // Drain the rest so a compressed stream's trailer is checked.
    io::copy(r, &mut io::sink())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, mtime: u64, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0000000\0");
        b[116..124].copy_from_slice(b"0000000\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[136..148].copy_from_slice(format!("{mtime:011o}\0").as_bytes());
        b[156] = b'0';
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        write_checksum(&mut b);
        b
    }

    #[test]
    fn clamps_only_later_times() {
        let mut tar = Vec::new();
        tar.extend_from_slice(&header("old", 100, 3));
        tar.extend_from_slice(&{
            let mut d = [0u8; BLOCK];
            d[..3].copy_from_slice(b"abc");
            d
        });
        tar.extend_from_slice(&header("new", 5000, 0));
        tar.extend_from_slice(&[0u8; 2 * BLOCK]);
        let mut out = Vec::new();
        rewrite(&mut &tar[..], &mut out, 1000).unwrap();
        assert_eq!(out.len(), tar.len());
        assert_eq!(&out[..2 * BLOCK], &tar[..2 * BLOCK]);
        assert_eq!(&out[2 * BLOCK..3 * BLOCK], &header("new", 1000, 0)[..]);
        let mut same = Vec::new();
        rewrite(&mut &tar[..], &mut same, 10_000).unwrap();
        assert_eq!(same, tar);
    }

    #[test]
    fn pax_times_are_clamped() {
        let (out, changed) = rewrite_pax(b"20 mtime=5000.5\n", 1000);
        assert!(changed);
        assert_eq!(out, b"14 mtime=1000\n");
    }
}
