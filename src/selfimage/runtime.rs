//! What the binary needs at run time besides itself: its ELF interpreter
//! (the dynamic loader) and the shared libraries the loader resolves for it,
//! as the host that runs `oxport self-image` has them. They go into the
//! layer at the paths the loader looks them up by, so the image's container
//! starts with nothing else in it. A static binary needs none.
//!
//! The list comes from the loader itself (`LOADER --list BINARY`, what
//! `ldd` runs), so it is exactly what the binary loads, search paths and
//! all; the interpreter's path is read from the binary's `PT_INTERP`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file the image must hold for the binary to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFile {
    /// Where it goes in the image, without the leading `/`.
    pub image_path: String,
    /// The file on this host (symbolic links resolved).
    pub host_path: PathBuf,
}

/// The loader and the libraries `binary` needs, sorted by image path; empty
/// for a static binary.
pub fn files(binary: &Path) -> io::Result<Vec<RuntimeFile>> {
    let Some(interp) = interpreter(binary)? else {
        return Ok(Vec::new());
    };
    let out = Command::new(&interp)
        .arg("--list")
        .arg(binary)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("run {interp} --list: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{interp} --list {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut paths = vec![interp.clone()];
    paths.extend(library_paths(&String::from_utf8_lossy(&out.stdout)));
    let mut files = Vec::new();
    for p in paths {
        let image_path = p.trim_start_matches('/').to_string();
        if files
            .iter()
            .any(|f: &RuntimeFile| f.image_path == image_path)
        {
            continue;
        }
        let host_path =
            std::fs::canonicalize(&p).map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))?;
        files.push(RuntimeFile {
            image_path,
            host_path,
        });
    }
    files.sort_by(|a, b| a.image_path.cmp(&b.image_path));
    Ok(files)
}

/// The resolved paths in the loader's `--list` output: lines like
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or the loader's own
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
fn library_paths(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|line| {
            let line = line.trim();
            let target = line.split_once("=>").map_or(line, |(_, t)| t.trim());
            let path = target.split(" (").next()?.trim();
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// The `PT_INTERP` path of a 64-bit little-endian ELF file, if it has one.
fn interpreter(binary: &Path) -> io::Result<Option<String>> {
    let mut f = File::open(binary)?;
    let mut head = [0u8; 64];
    f.read_exact(&mut head)?;
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return Err(io::Error::other(format!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        )));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = (
        u64_at(&head, 0x20),
        u16_at(&head, 0x36),
        u16_at(&head, 0x38),
    );
    if phentsize < 56 {
        return Err(io::Error::other("ELF program headers too small"));
    }
    for i in 0..u64::from(phnum) {
        let mut ph = [0u8; 56];
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        f.read_exact(&mut ph)?;
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(ph[..4].try_into().expect("4 bytes")) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
        if size == 0 || size > 4096 {
            return Err(io::Error::other("ELF interpreter path of a bad size"));
        }
        let mut path = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut path)?;
        let path = String::from_utf8_lossy(&path)
            .trim_end_matches('\0')
            .to_string();
        return Ok(Some(path));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_give_paths() {
        let list = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007e)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007d)\n";
        assert_eq!(
            library_paths(list),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn the_test_binary_needs_its_loader_and_libc() {
        let exe = std::env::current_exe().unwrap();
        let files = files(&exe).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.image_path.as_str()).collect();
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("libc.so.6")), "{names:?}");
        for f in &files {
            assert!(f.host_path.is_file(), "{f:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, vec![0u8; 128]).unwrap();
        assert!(interpreter(&p).is_err());
    }
}
