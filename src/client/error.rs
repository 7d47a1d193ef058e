//! What can go wrong in a call to the server, and the one place where a
//! failed call is classified: a status the server sent, or a failure of the
//! HTTP/2 connection under it.
//!
//! Why here and not where a command prints it: every call (health, export,
//! uploads) meets the same failures, and only the client knows the address
//! and whether the other end ever answered.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Address(String),
    #[error("cannot connect to {addr}: {}", crate::error::chain(source))]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// A status from the server; its message is shown verbatim.
    #[error("{}", .0.message())]
    Status(#[from] Status),
    /// The HTTP/2 connection failed under a call: the other end is no gRPC
    /// server (it never answered one), or the connection broke.
    #[error("{}", transport_text(addr, status, *answered))]
    Transport {
        addr: String,
        status: Status,
        /// The other end had answered a call of this client before.
        answered: bool,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

impl ClientError {
    /// The gRPC code when the error came from the server.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }

    /// The status of a failed call, from the server or from the connection:
    /// what decides whether an upload is worth resuming.
    pub fn call_status(&self) -> Option<&Status> {
        match self {
            ClientError::Status(s) | ClientError::Transport { status: s, .. } => Some(s),
            _ => None,
        }
    }
}

/// Classifies a failed call to `addr`. A status the HTTP/2 client made
/// carries the failure it came from as its source; one the server sent
/// has none.
pub fn call_failed(addr: &str, answered: bool, status: Status) -> ClientError {
    if std::error::Error::source(&status).is_none() {
        return ClientError::Status(status);
    }
    ClientError::Transport {
        addr: addr.to_string(),
        status,
        answered,
    }
}

/// The HTTP/2 client's own text ("h2 protocol error", a bare "transport
/// error", "operation was canceled", depending on when the other end
/// answers the preface or hangs up) says nothing of the likely cause when
/// nothing ever answered: an address that is not an oxport server's.
fn transport_text(addr: &str, status: &Status, answered: bool) -> String {
    let m = status.message();
    if answered {
        format!("the connection to {addr} broke ({m})")
    } else {
        format!(
            "{addr} does not speak gRPC over HTTP/2 ({m}): is it the address of an oxport server?"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_from_the_server_stays_as_it_came() {
        let e = call_failed("tcp://h:1", false, Status::not_found("no such blob"));
        assert!(matches!(e, ClientError::Status(_)), "{e:?}");
        assert_eq!(e.to_string(), "no such blob");
        assert_eq!(e.code(), Some(Code::NotFound));
    }

    #[test]
    fn a_connection_failure_names_the_address_and_the_likely_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = Status::from_error(Box::new(io));
        let first = call_failed("tcp://h:1", false, status.clone());
        assert_eq!(
            first.to_string(),
            format!(
                "tcp://h:1 does not speak gRPC over HTTP/2 ({}): is it the address of an oxport server?",
                status.message()
            )
        );
        assert!(first.code().is_none());
        assert!(first.call_status().is_some());
        let later = call_failed("tcp://h:1", true, status.clone());
        assert_eq!(
            later.to_string(),
            format!("the connection to tcp://h:1 broke ({})", status.message())
        );
    }
}
