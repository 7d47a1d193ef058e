//! Where the server listens: a unix socket or a TCP address.
//!
//! A unix socket is created with mode 0660 in a directory created on demand.
//! A socket file left behind by a dead server is replaced; one that a live
//! server still answers on is not, so two servers never share a path.

use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::net::{TcpListener, UnixListener};

/// The default listen address of `oxport serve`.
pub const DEFAULT_LISTEN: &str = "unix:///run/oxport/oxport.sock";

/// `unix:///path/to.sock` or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(String),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("invalid address {s:?}: empty socket path"));
            }
            Ok(ListenAddr::Unix(PathBuf::from(path)))
        } else if let Some(hostport) = s.strip_prefix("tcp://") {
            if !hostport.contains(':') {
                return Err(format!("invalid address {s:?}: want tcp://HOST:PORT"));
            }
            Ok(ListenAddr::Tcp(hostport.to_string()))
        } else {
            Err(format!(
                "invalid address {s:?}: want unix:///path/to.sock or tcp://HOST:PORT"
            ))
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A bound listener, ready to be served.
pub enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
    /// A unix socket passed by the supervisor (see `activation`): its file
    /// belongs to the supervisor and is left in place on exit.
    Activated(UnixListener),
}

impl Listener {
    /// Binds the address. For a unix socket: creates the parent directory,
    /// replaces a stale socket file, refuses a live one, sets mode 0660.
    pub async fn bind(addr: &ListenAddr) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a.as_str()).await?)),
            ListenAddr::Unix(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// Registers a socket taken over from the supervisor with the runtime.
    pub fn from_inherited(socket: super::activation::Inherited) -> io::Result<Listener> {
        use super::activation::Inherited;
        Ok(match socket {
            Inherited::Unix(l) => Listener::Activated(UnixListener::from_std(l)?),
            Inherited::Tcp(l) => Listener::Tcp(TcpListener::from_std(l)?),
        })
    }

    /// The bound address, with the real port for `tcp://HOST:0`.
    pub fn local_addr(&self) -> io::Result<ListenAddr> {
        Ok(match self {
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
            Listener::Activated(l) => ListenAddr::Unix(
                l.local_addr()?
                    .as_pathname()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ),
            Listener::Tcp(l) => ListenAddr::Tcp(l.local_addr()?.to_string()),
        })
    }
}

async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server is already listening on {}", path.display()),
        )),
        // Nobody accepts on it: a dead server's leftover.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // For example no permission: a live server may own it, so leave it.
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether {} is in use: {e}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "unix:///run/x.sock".parse::<ListenAddr>(),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "tcp://127.0.0.1:0".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp("127.0.0.1:0".into()))
        );
        assert!("http://x".parse::<ListenAddr>().is_err());
        assert!("tcp://nohost".parse::<ListenAddr>().is_err());
        assert!("unix://".parse::<ListenAddr>().is_err());
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/s.sock");
        let addr = ListenAddr::Unix(path.clone());
        let live = Listener::bind(&addr).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let err = Listener::bind(&addr).await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live); // the socket file stays behind, as after a crash
        assert!(path.exists());
        let _again = Listener::bind(&addr).await.unwrap();

        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let err = Listener::bind(&ListenAddr::Unix(plain))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }
}
