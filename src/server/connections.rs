//! Accepting connections without letting clients exhaust the process.
//!
//! - At most `--max-connections` connections are open at once. Past that the
//!   server stops accepting, so further clients wait in the kernel's backlog
//!   instead of taking file descriptors the server needs (for its store, and
//!   for the connection of a health check once one closes).
//! - An accept that fails (no file descriptors left, no memory) is retried
//!   after a pause instead of at once, which would spin a core.
//! - A connection that sends nothing within [`FIRST_BYTES`] of being
//!   accepted is closed: a silent socket cannot hold its slot.
//!
//! Each accepted stream carries its slot, released when the connection
//! closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;
use tracing::warn;

/// How long to wait after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a new connection may stay silent.
pub const FIRST_BYTES: Duration = Duration::from_secs(10);

/// An accepted connection and its slot.
pub struct Counted<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
    /// Until the first bytes arrive: when the connection is given up.
    silent_until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Counted<T> {
    fn new(io: T, slot: OwnedSemaphorePermit) -> Self {
        Counted {
            io,
            _slot: slot,
            silent_until: Some(Box::pin(tokio::time::sleep(FIRST_BYTES))),
        }
    }
}

impl<T: Connected> Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.silent_until = None,
            Poll::Pending => {
                if let Some(deadline) = self.silent_until.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the connection sent nothing",
                        )));
                    }
                }
            }
            _ => {}
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The connections of `incoming`, at most `max` open at once; failed accepts
/// are logged and retried after a pause.
pub fn bounded<S, T>(incoming: S, max: usize) -> impl Stream<Item = io::Result<Counted<T>>>
where
    S: Stream<Item = io::Result<T>> + Unpin,
{
    let slots = Arc::new(Semaphore::new(max.max(1)));
    stream::unfold((incoming, slots), |(mut incoming, slots)| async move {
        use futures_util::StreamExt as _;
        loop {
            // Take the slot first: at the cap nothing more is accepted.
            let slot = Arc::clone(&slots).acquire_owned().await.ok()?;
            match incoming.next().await? {
                Ok(io) => return Some((Ok(Counted::new(io, slot)), (incoming, slots))),
                Err(e) => {
                    warn!(error = %e, "accepting a connection failed; pausing");
                    drop(slot);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn at_the_cap_nothing_more_is_accepted_until_one_closes() {
        let items: Vec<io::Result<u32>> =
            vec![Ok(1), Err(io::Error::other("EMFILE")), Ok(2), Ok(3)];
        let mut s = Box::pin(bounded(stream::iter(items), 2));
        let a = s.next().await.unwrap().unwrap();
        let b = s.next().await.unwrap().unwrap();
        assert_eq!((a.io, b.io), (1, 2));
        // Both slots are taken: the third waits.
        let third = tokio::time::timeout(Duration::from_millis(200), s.next()).await;
        assert!(third.is_err(), "accepted past the cap");
        drop(a);
        let c = s.next().await.unwrap().unwrap();
        assert_eq!(c.io, 3);
    }
}
