//! Socket activation: a listening socket handed over by systemd (or any
//! supervisor speaking the same protocol) instead of one bound here.
//!
//! The protocol: the supervisor passes listening sockets as file descriptors
//! 3, 4, ... and sets `LISTEN_FDS` to their count and `LISTEN_PID` to the pid
//! of the process meant to take them (so a child that inherits the
//! environment does not take them too). oxport serves one socket: the first.
//!
//! The supervisor owns an inherited unix socket's file: the server neither
//! replaces it on start nor removes it on exit, so a restart keeps the path
//! (and the clients queued on it) alive.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The first passed descriptor.
const FIRST_FD: RawFd = 3;

/// A socket taken over from the supervisor, not yet registered with tokio
/// (taken before the runtime starts, while the process has one thread).
#[derive(Debug)]
pub enum Inherited {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// How many descriptors were passed to this process: 0 when the variables
/// are absent or meant for another process.
pub fn passed_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> io::Result<usize> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(0);
    };
    let bad = |what: &str, v: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket activation: invalid {what} {v:?}"),
        )
    };
    let target: u32 = listen_pid
        .trim()
        .parse()
        .map_err(|_| bad("LISTEN_PID", listen_pid))?;
    if target != pid {
        return Ok(0);
    }
    listen_fds
        .trim()
        .parse()
        .map_err(|_| bad("LISTEN_FDS", listen_fds))
}

/// Takes the first passed socket, if any, and clears the variables so that
/// no child process sees them. Call before starting threads.
pub fn take_from_env() -> io::Result<Option<Inherited>> {
    let n = passed_fds(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    )?;
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if n == 0 {
        return Ok(None);
    }
    if n > 1 {
        tracing::warn!(
            passed = n,
            "socket activation: serving only the first socket"
        );
    }
    // SAFETY: the protocol hands fd 3 to this process, which owns it from
    // here on; nothing else in the process has touched it.
    let passed = unsafe { OwnedFd::from_raw_fd(FIRST_FD) };
    // The passed descriptor lacks close-on-exec; a duplicate has it, and the
    // original is closed when `passed` drops.
    let fd = passed.try_clone()?;
    drop(passed);
    classify(fd).map(Some)
}

/// Tells a unix socket from a TCP one by the family of its local address.
fn classify(fd: OwnedFd) -> io::Result<Inherited> {
    let unix = std::os::unix::net::UnixListener::from(fd);
    if unix.local_addr().is_ok() {
        unix.set_nonblocking(true)?;
        return Ok(Inherited::Unix(unix));
    }
    let tcp = std::net::TcpListener::from(OwnedFd::from(unix));
    match tcp.local_addr() {
        Ok(_) => {
            tcp.set_nonblocking(true)?;
            Ok(Inherited::Tcp(tcp))
        }
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket activation: fd {FIRST_FD} is neither a unix nor a TCP socket: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_for_one_pid() {
        assert_eq!(passed_fds(None, None, 7).unwrap(), 0);
        assert_eq!(passed_fds(Some("7"), None, 7).unwrap(), 0);
        assert_eq!(passed_fds(Some("7"), Some("1"), 7).unwrap(), 1);
        assert_eq!(passed_fds(Some("8"), Some("1"), 7).unwrap(), 0);
        assert!(passed_fds(Some("x"), Some("1"), 7).is_err());
        assert!(passed_fds(Some("7"), Some("one"), 7).is_err());
    }

    #[test]
    fn sockets_are_classified_by_family() {
        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(matches!(
            classify(OwnedFd::from(unix)).unwrap(),
            Inherited::Unix(_)
        ));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(matches!(
            classify(OwnedFd::from(tcp)).unwrap(),
            Inherited::Tcp(_)
        ));
        let file = std::fs::File::open(dir.path()).unwrap();
        assert!(classify(OwnedFd::from(file)).is_err());
    }
}
