//! Registry names as hosts: where a name's API lives, which names are
//! loopback (and so may be served over plain HTTP), and whether two URLs
//! share an origin (credentials never leave the registry's).

/// The API host of a registry name (`docker.io` is served elsewhere).
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" || domain == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// True for `localhost` and IP literals in 127.0.0.0/8 or `::1` (with or
/// without a port). Names that merely look like one (`127.example.com`) are
/// not: they may resolve anywhere.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, port)) if port.is_empty() || port.starts_with(':') => inner,
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((h, _)) => h,
            None => host,
        },
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Ok(std::net::IpAddr::V6(a)) => a.is_loopback(),
        Err(_) => false,
    }
}

/// True when `a` and `b` share scheme, host and port.
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    fn origin(u: &str) -> Option<(String, String, u16)> {
        let uri: http::Uri = u.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some((scheme, uri.host()?.to_ascii_lowercase(), port))
    }
    match (origin(a), origin(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.local:5000"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.5.6.7:80"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("LOCALHOST:5000"));
        for remote in [
            "127.registry.example.com",
            "127.registry.example.com:5000",
            "127.0.0.1.example.com:5000",
            "localhost.example.com",
            "[::1].example.com",
            "[::2]:5000",
            "128.0.0.1:5000",
            "::1",
        ] {
            assert!(!is_loopback(remote), "{remote} is not loopback");
        }
    }
}
