//! Who may talk to the server: the unix socket's group, TLS and mutual TLS
//! on TCP, and a loud warning for plain TCP beyond loopback.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// The server's certificate and key (PEM), and the CA that client
/// certificates must chain to; with it, clients without one are refused
/// during the TLS handshake, before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    pub fn config(&self) -> io::Result<ServerTlsConfig> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        let mut cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(cfg)
    }
}

/// Gives the socket file to a group (by name or number); with mode 0660
/// its members may connect.
pub fn set_socket_group(path: &Path, group: &str) -> io::Result<()> {
    let gid = resolve_group(group)?;
    std::os::unix::fs::chown(path, None, Some(gid))
        .map_err(|e| io::Error::new(e.kind(), format!("chgrp {group} {}: {e}", path.display())))
}

/// A group name or number as a gid, names from `/etc/group`.
pub fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")?;
    gid_in(&text, group).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group named {group:?} in /etc/group"),
        )
    })
}

fn gid_in(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Warns loudly when plain TCP listens beyond loopback: anyone who can
/// reach the port could run exports and push with the server's credentials.
pub fn warn_if_exposed(addr: &SocketAddr, tls: bool) {
    if !tls && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "INSECURE: serving plain TCP without TLS on a non-loopback address; anyone who \
             can reach it may run exports. Use --tls-cert/--tls-key with --tls-client-ca, \
             or a unix socket"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_or_number() {
        let etc = "root:x:0:\ndocker:x:998:alice,bob\noxport:x:1001:\n";
        assert_eq!(gid_in(etc, "docker"), Some(998));
        assert_eq!(gid_in(etc, "oxport"), Some(1001));
        assert_eq!(gid_in(etc, "dock"), None);
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        assert!(resolve_group("no-such-group-here").is_err());
    }

    #[test]
    fn socket_group_changes_the_owner_group() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, b"").unwrap();
        // The own primary group is always allowed.
        let gid = std::fs::metadata(dir.path()).unwrap().gid();
        set_socket_group(&path, &gid.to_string()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().gid(), gid);
    }
}
