//! HTTPS first, plain HTTP only when the server does not speak TLS.
//!
//! Loopback registries and registries named with `registry.insecure=true`
//! may be served over plain HTTP or over TLS, and nothing in the image
//! reference says which. containerd and BuildKit try HTTPS and fall back to
//! plain HTTP only when the server plainly is not a TLS server: it answers
//! the TLS hello with an HTTP response, or nothing listens on the default
//! HTTPS port. oxport does the same, with one difference in mechanism: it
//! asks once per client with a bare TLS handshake before the first request,
//! because request bodies may be streams that cannot be sent twice. The
//! answer is kept for the client's life.
//!
//! A certificate that fails verification is a TLS server saying who it is;
//! it is reported as a certificate error and never answered with plain HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tracing::debug;

/// How long the probe waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a TLS handshake may take before the server is taken for a
/// plain HTTP one that waits for a request line (Go's default, which
/// containerd's fall-back also treats as "not TLS").
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the scheme could not be settled.
#[derive(Debug)]
pub enum ProbeError {
    /// The server speaks TLS but its certificate failed verification.
    Certificate(String),
    /// The server could not be reached; the caller may retry.
    Failed(String),
}

/// The scheme of one registry client.
pub struct Scheme {
    /// Plain HTTP may follow a failed TLS attempt (loopback, insecure).
    may_fall_back: bool,
    /// Settled: true for plain HTTP.
    plain: OnceCell<bool>,
}

impl Scheme {
    pub fn new(may_fall_back: bool) -> Scheme {
        let plain = OnceCell::new();
        if !may_fall_back {
            let _ = plain.set(false);
        }
        Scheme {
            may_fall_back,
            plain,
        }
    }

    /// True once the client uses plain HTTP.
    pub fn plain(&self) -> bool {
        self.plain.get().copied().unwrap_or(false)
    }

    /// Settles the scheme with one probe of `api_host` (`host[:port]`)
    /// unless that was done; concurrent callers share the probe, and a
    /// failed probe is tried again by the next call.
    pub async fn settle(&self, tls: Arc<ClientConfig>, api_host: &str) -> Result<(), ProbeError> {
        if !self.may_fall_back || self.plain.initialized() {
            return Ok(());
        }
        self.plain
            .get_or_try_init(|| async {
                let plain = match probe(tls, api_host).await? {
                    None => false,
                    Some(why) => {
                        debug!(
                            registry = api_host,
                            why, "plain HTTP: the server does not speak TLS"
                        );
                        true
                    }
                };
                Ok(plain)
            })
            .await
            .map(|_| ())
    }
}

/// One TLS handshake with `api_host`: None when it speaks TLS, Some(why)
/// when it does not.
async fn probe(tls: Arc<ClientConfig>, api_host: &str) -> Result<Option<String>, ProbeError> {
    let authority: http::uri::Authority = api_host
        .parse()
        .map_err(|e| ProbeError::Failed(format!("bad registry address {api_host:?}: {e}")))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let explicit_port = authority.port_u16();
    let port = explicit_port.unwrap_or(443);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        // Without a port, HTTPS and HTTP are different ports: nothing on
        // 443 says nothing about 80.
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused && explicit_port.is_none() => {
            return Ok(Some(format!("nothing listens on {host}:443")))
        }
        Ok(Err(e)) => return Err(ProbeError::Failed(format!("connect to {api_host}: {e}"))),
        Err(_) => {
            return Err(ProbeError::Failed(format!(
                "connect to {api_host}: no connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ProbeError::Failed(format!("bad registry host {host:?}: {e}")))?;
    let mut stream = Recorder {
        inner: tcp,
        first: Vec::new(),
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let handshake = connector.connect(name, &mut stream);
    // The TLS stream is dropped at once: this connection only asks.
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map(|r| r.map(drop));
    match result {
        Ok(Ok(_)) => Ok(None),
        Ok(Err(e)) => classify(api_host, &stream.first, &e),
        Err(_) => Ok(Some(format!(
            "no TLS answer within {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        ))),
    }
}

/// A failed handshake: not TLS (Ok(Some)), or an error.
fn classify(api_host: &str, first: &[u8], e: &io::Error) -> Result<Option<String>, ProbeError> {
    if first.starts_with(b"HTTP/") {
        return Ok(Some("the server answered the TLS hello in HTTP".into()));
    }
    if let Some(why) = super::tls::certificate_problem(e) {
        return Err(ProbeError::Certificate(why));
    }
    let closed = matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    );
    if first.is_empty() && closed {
        // A TLS server answers a hello with a hello or an alert; a peer that
        // hangs up without a byte is an HTTP server that could not parse it.
        return Ok(Some(
            "the server closed the connection on the TLS hello".into(),
        ));
    }
    Err(ProbeError::Failed(format!(
        "TLS handshake with {api_host}: {}",
        super::transport::describe(e)
    )))
}

/// A stream that keeps the first bytes the server sends.
struct Recorder {
    inner: TcpStream,
    first: Vec<u8>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let want = 8usize.saturating_sub(self.first.len());
        if want > 0 {
            let new = &buf.filled()[before..];
            let take = new.len().min(want);
            let copy = new[..take].to_vec();
            self.first.extend_from_slice(&copy);
        }
        r
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_and_hang_ups_are_not_tls() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(classify("h", b"HTTP/1.1", &eof), Ok(Some(_))));
        assert!(matches!(classify("h", b"", &eof), Ok(Some(_))));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(classify("h", b"", &reset), Ok(Some(_))));
        // Bytes that are not HTTP, then a hang-up: a broken TLS server.
        assert!(matches!(
            classify("h", b"\x16\x03\x03", &eof),
            Err(ProbeError::Failed(_))
        ));
        let bad = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(
            classify("h", b"\x16\x03\x03", &bad),
            Err(ProbeError::Certificate(_))
        ));
    }
}
