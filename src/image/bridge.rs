//! Blocking access to the async registry client.
//!
//! Convert and inspect read image stores from plain threads, and the CLI
//! calls them from inside its own runtime's `block_on`. So a registry store
//! owns a small runtime and waits on std channels, which block safely in
//! any context (tokio's blocking receivers panic inside a runtime).

use std::future::Future;
use std::io::{self, Read};
use std::sync::mpsc;

use bytes::{Buf, Bytes};
use tokio::runtime::{Handle, Runtime};

use crate::error::{ExportError, Result};
use crate::registry::RegistryClient;

/// Chunks in flight between a blob fetch and its reader.
const CHUNKS_IN_FLIGHT: usize = 8;

/// A runtime for registry calls, shut down without waiting when dropped.
pub struct Bridge {
    rt: Option<Runtime>,
}

impl Bridge {
    pub fn new() -> Result<Bridge> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("oxport-registry")
            .enable_all()
            .build()
            .map_err(|e| ExportError::internal(format!("registry runtime: {e}")))?;
        Ok(Bridge { rt: Some(rt) })
    }

    pub fn handle(&self) -> &Handle {
        self.rt
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }

    /// Runs `fut` on the bridge's runtime and waits for its output.
    pub fn call<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| ExportError::internal("a registry task ended without a result"))
    }

    /// Streams a blob: a thread drives the fetch and hands its chunks over a
    /// small channel, so at most a few chunks are held at once. The digest
    /// is verified by the client when the stream ends.
    pub fn blob_reader(
        &self,
        client: RegistryClient,
        repo: String,
        digest: String,
    ) -> Result<ChunkReader> {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Option<Bytes>>>(CHUNKS_IN_FLIGHT);
        let handle = self.handle().clone();
        let to_io = |e: crate::registry::RegistryError| io::Error::other(e.to_string());
        std::thread::Builder::new()
            .name("oxport-blob".into())
            .spawn(move || {
                handle.block_on(async move {
                    let mut stream = match client.fetch_blob(&repo, &digest).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(to_io(e)));
                            return;
                        }
                    };
                    loop {
                        let next = stream.next_chunk().await;
                        let last = !matches!(next, Ok(Some(_)));
                        // A send error means the reader is gone: stop fetching.
                        if tx.send(next.map_err(to_io)).is_err() || last {
                            return;
                        }
                    }
                })
            })
            .map_err(|e| ExportError::internal(format!("blob reader thread: {e}")))?;
        Ok(ChunkReader {
            rx,
            current: Bytes::new(),
            ended: false,
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The reading end of a streamed blob.
pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Option<Bytes>>>,
    current: Bytes,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(Some(chunk))) => self.current = chunk,
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => {
                    self.ended = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob fetch stopped before the end",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_work_inside_another_runtime() {
        let bridge = Bridge::new().unwrap();
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = outer.block_on(async { bridge.call(async { 6 * 7 }).unwrap() });
        assert_eq!(got, 42);
        // Dropped inside a runtime context: must not panic.
        outer.block_on(async move { drop(bridge) });
    }

    #[test]
    fn a_reader_reports_a_stream_that_stops_early() {
        let (tx, rx) = mpsc::sync_channel(2);
        tx.send(Ok(Some(Bytes::from_static(b"abc")))).unwrap();
        drop(tx);
        let mut r = ChunkReader {
            rx,
            current: Bytes::new(),
            ended: false,
        };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"abc");
    }
}
