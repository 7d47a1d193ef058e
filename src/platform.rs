//! Platform strings (`os/arch[/variant]`), normalised as containerd does, so
//! that `linux/aarch64` and `linux/arm64/v8` name the same platform.

use crate::oci::Platform;

/// Normalises an architecture and variant pair.
pub fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = if variant == "8" || variant == "v8" {
                String::new()
            } else {
                variant
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

/// Parses `os/arch[/variant]` (or just `os`/`arch`) into a normalised platform.
pub fn parse(spec: &str) -> Option<Platform> {
    let parts: Vec<&str> = spec.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (os, arch, variant) = match parts.as_slice() {
        [one] => {
            let lower = one.to_ascii_lowercase();
            if is_known_os(&lower) {
                (lower, "amd64".to_string(), String::new())
            } else {
                ("linux".to_string(), lower, String::new())
            }
        }
        [os, arch] => (os.to_ascii_lowercase(), arch.to_string(), String::new()),
        [os, arch, variant] => (
            os.to_ascii_lowercase(),
            arch.to_string(),
            variant.to_string(),
        ),
        _ => return None,
    };
    let (architecture, variant) = normalize_arch(&arch, &variant);
    Some(Platform {
        architecture,
        os,
        variant,
        ..Default::default()
    })
}

/// The normalised `os/arch[/variant]` string of a platform.
pub fn format(p: &Platform) -> String {
    let (arch, variant) = normalize_arch(&p.architecture, &p.variant);
    let mut s = format!("{}/{}", p.os.to_ascii_lowercase(), arch);
    if !variant.is_empty() {
        s.push('/');
        s.push_str(&variant);
    }
    s
}

fn is_known_os(s: &str) -> bool {
    matches!(
        s,
        "linux" | "windows" | "darwin" | "freebsd" | "netbsd" | "openbsd" | "solaris" | "illumos"
    )
}

/// Go's `url.QueryEscape` (used in purls): unreserved bytes kept, space as
/// `+`, everything else `%XX` in upper case.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_aliases() {
        assert_eq!(format(&parse("linux/aarch64").unwrap()), "linux/arm64");
        assert_eq!(format(&parse("linux/arm64/v8").unwrap()), "linux/arm64");
        assert_eq!(format(&parse("linux/arm").unwrap()), "linux/arm/v7");
        assert_eq!(format(&parse("linux/x86_64").unwrap()), "linux/amd64");
        assert!(parse("linux//x").is_none());
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(query_escape("linux/arm/v7"), "linux%2Farm%2Fv7");
    }
}
