//! Bench inputs: pre-compressed layers of incompressible bytes, a tar of
//! system files for the compression rows, and the `case.json` around them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

/// One layer blob written to disk.
pub struct Blob {
    pub path: PathBuf,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: &'static str,
}

const BLOCK: usize = 512;

/// A USTAR header for a regular file (uid/gid 0, fixed mtime).
fn tar_header(name: &str, size: u64) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b[100..108].copy_from_slice(b"0000644\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"14000000000\0");
    b[156] = b'0';
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|x| *x as u32).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Hashes what it writes, so digests cost no second pass.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A gzip layer (stored deflate blocks, like a layer of already-compressed
/// files) whose tar holds one file of `size` pseudo-random bytes.
pub fn random_gzip_layer(dir: &Path, seed: u64, size: u64) -> io::Result<Blob> {
    let tmp = dir.join(format!("layer-{seed}.tmp"));
    let file = Hashing {
        inner: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        hash: Sha256::new(),
        count: 0,
    };
    let gz = GzEncoder::new(file, flate2::Compression::none());
    let mut tar = Hashing {
        inner: gz,
        hash: Sha256::new(),
        count: 0,
    };
    let payload = size.saturating_sub(3 * BLOCK as u64) / BLOCK as u64 * BLOCK as u64;
    tar.write_all(&tar_header(&format!("data-{seed}.bin"), payload))?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = payload;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            // xorshift64*: fast, and incompressible enough for deflate.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        tar.write_all(&buf[..n])?;
        left -= n as u64;
    }
    tar.write_all(&[0u8; 2 * BLOCK])?;
    let diff_id = hex_digest(tar.hash);
    let mut file = tar.inner.finish()?;
    file.flush()?;
    finish_blob(
        &tmp,
        dir,
        hex_digest(file.hash),
        diff_id,
        file.count,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    )
}

fn finish_blob(
    tmp: &Path,
    dir: &Path,
    digest: String,
    diff_id: String,
    size: u64,
    media_type: &'static str,
) -> io::Result<Blob> {
    let path = dir.join(digest.trim_start_matches("sha256:"));
    fs::rename(tmp, &path)?;
    Ok(Blob {
        path,
        digest,
        diff_id,
        size,
        media_type,
    })
}

/// An uncompressed layer of about `size` bytes: the regular files found
/// under `roots`, in directory order, as a tar (entries get short synthetic
/// names, the content is the files' own). Walks the roots again when they
/// hold less than `size`.
pub fn system_tar_layer(dir: &Path, roots: &[&str], size: u64) -> io::Result<Blob> {
    let tmp = dir.join("system.tmp");
    let mut tar = Hashing {
        inner: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        hash: Sha256::new(),
        count: 0,
    };
    let mut files = Vec::new();
    for root in roots {
        collect_files(Path::new(root), &mut files);
    }
    if files.is_empty() {
        return Err(io::Error::other("no readable files under the system roots"));
    }
    let mut buf = Vec::new();
    let mut n = 0u64;
    'outer: loop {
        for path in &files {
            let budget = size.saturating_sub(tar.count + 3 * BLOCK as u64);
            if budget < BLOCK as u64 {
                break 'outer;
            }
            buf.clear();
            let Ok(f) = File::open(path) else { continue };
            if f.take(budget).read_to_end(&mut buf).is_err() {
                continue;
            }
            tar.write_all(&tar_header(&format!("f/{n:08}"), buf.len() as u64))?;
            tar.write_all(&buf)?;
            tar.write_all(&vec![0u8; padding(buf.len() as u64)])?;
            n += 1;
        }
    }
    tar.write_all(&[0u8; 2 * BLOCK])?;
    tar.flush()?;
    let digest = hex_digest(tar.hash);
    finish_blob(
        &tmp,
        dir,
        digest.clone(),
        digest,
        tar.count,
        "application/vnd.oci.image.layer.v1.tar",
    )
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            collect_files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// Writes `<name>.json`, a `case.json` for `layers[platform]` (paths relative to `dir`).
pub fn write_case(
    dir: &Path,
    name: &str,
    attrs: &[(&str, &str)],
    platforms: &[(&str, Vec<&Blob>)],
) -> io::Result<PathBuf> {
    use serde_json::{json, Map, Value};
    let mut refs = Map::new();
    let mut listed = Vec::new();
    for (id, blobs) in platforms {
        let (os, arch) = id.split_once('/').unwrap_or(("linux", id));
        listed.push(json!({"ID": id, "Platform": {"architecture": arch, "os": os}}));
        let layers: Vec<Value> = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                json!({
                    "blob": b.path.strip_prefix(dir).unwrap_or(&b.path),
                    "mediaType": b.media_type,
                    "digest": b.digest,
                    "size": b.size,
                    "diffID": b.diff_id,
                    "annotations": {},
                    "createdBy": format!("layer {i}"),
                    "created": "2024-01-01T00:00:00Z",
                })
            })
            .collect();
        refs.insert(id.to_string(), Value::Array(layers));
    }
    let attrs: Map<String, Value> = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let case = json!({
        "exporter": "oci",
        "attrs": attrs,
        "compatibilityVersion": 0,
        "metadata": {"refs.platforms": json!({"Platforms": listed}).to_string()},
        "attestations": {},
        "refs": refs,
    });
    let path = dir.join(format!("{name}.json"));
    fs::write(&path, serde_json::to_vec_pretty(&case)?)?;
    Ok(path)
}
