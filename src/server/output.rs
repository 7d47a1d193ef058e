//! The bridge from the blocking export core to the Export response stream.
//!
//! The core writes its archive into a [`ChunkWriter`], which cuts it into
//! chunks of at most [`CHUNK_SIZE`] and hands them to a bounded channel. A slow
//! client fills the channel and the core blocks, so memory stays flat at a
//! few chunks per export. When the client goes away the receiver is dropped,
//! the next write fails, and the core stops.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::Status;

use crate::progress::Progress;
use crate::proto::{export_event::Event, ExportEvent};
use crate::wire::{progress_to_proto, CHUNK_SIZE};

pub type EventSender = mpsc::Sender<Result<ExportEvent, Status>>;

/// Messages in flight per export; with 1 MiB chunks this bounds the memory
/// an export holds for a slow client.
pub const CHANNEL_DEPTH: usize = 4;

/// Sends events from blocking code. Errors once the client went away, or
/// once the request deadline passed (a client that stops reading cannot
/// hold an export slot beyond it).
#[derive(Clone)]
pub struct Events {
    tx: EventSender,
    request_id: String,
    deadline: Option<(Instant, tokio::runtime::Handle)>,
}

/// How long the error that ends a request past its deadline may wait to be sent.
const LAST_WORD: Duration = Duration::from_secs(5);

impl Events {
    pub fn new(tx: EventSender, request_id: String) -> Self {
        Events {
            tx,
            request_id,
            deadline: None,
        }
    }

    /// Bounds every send by `deadline`; needs to be called on the runtime.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| (deadline, h));
        self
    }

    pub fn deadline_passed(&self) -> bool {
        self.deadline
            .as_ref()
            .is_some_and(|(d, _)| Instant::now() >= *d)
    }

    fn deliver(&self, item: Result<ExportEvent, Status>, until: Option<Instant>) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the client went away");
        match (&self.deadline, until) {
            (Some((deadline, handle)), until) => {
                let until = tokio::time::Instant::from_std(until.unwrap_or(*deadline));
                match handle.block_on(tokio::time::timeout_at(until, self.tx.send(item))) {
                    Ok(r) => r.map_err(|_| gone()),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request deadline passed (--request-timeout)",
                    )),
                }
            }
            (None, _) => self.tx.blocking_send(item).map_err(|_| gone()),
        }
    }

    pub fn send(&self, event: Event) -> io::Result<()> {
        if self.deadline_passed() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request deadline passed (--request-timeout)",
            ));
        }
        let msg = ExportEvent {
            request_id: self.request_id.clone(),
            event: Some(event),
        };
        self.deliver(Ok(msg), None)
    }

    pub fn send_error(&self, status: Status) -> io::Result<()> {
        self.deliver(Err(status), Some(Instant::now() + LAST_WORD))
    }

    /// Ends the stream with DEADLINE_EXCEEDED, if the client still listens.
    pub fn send_deadline_error(&self) {
        let e = crate::error::ExportError::new(
            crate::error::ErrorKind::DeadlineExceeded,
            "the request did not finish within its deadline (--request-timeout)",
        );
        let _ = self.send_error(super::status::to_status(&e));
    }

    pub fn progress(&self, p: &Progress) {
        // A failed send means the client left; the next write reports it.
        let _ = self.send(Event::Progress(progress_to_proto(p)));
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A `Write` that sends full chunks as they fill up.
pub struct ChunkWriter {
    events: Events,
    buf: Vec<u8>,
    sent: u64,
}

impl ChunkWriter {
    pub fn new(events: Events) -> Self {
        ChunkWriter {
            events,
            buf: Vec::with_capacity(CHUNK_SIZE),
            sent: 0,
        }
    }

    /// Output bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.sent += chunk.len() as u64;
        crate::metrics::global().add_bytes_out(chunk.len() as u64);
        self.events.send(Event::Chunk(chunk.into()))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.events.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            ));
        }
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bounded_and_in_order() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut w = ChunkWriter::new(Events::new(tx, "id".into()));
        let data: Vec<u8> = (0..(CHUNK_SIZE * 2 + 10))
            .map(|i| (i % 253) as u8)
            .collect();
        std::thread::spawn(move || {
            for part in data.chunks(300_000) {
                w.write_all(part).unwrap();
            }
            w.flush().unwrap();
        })
        .join()
        .unwrap();
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Ok(Ok(ev)) = rx.try_recv() {
            assert_eq!(ev.request_id, "id");
            let Some(Event::Chunk(c)) = ev.event else {
                panic!("not a chunk")
            };
            sizes.push(c.len());
            got.extend(c);
        }
        assert_eq!(sizes, vec![CHUNK_SIZE, CHUNK_SIZE, 10]);
        let want: Vec<u8> = (0..(CHUNK_SIZE * 2 + 10))
            .map(|i| (i % 253) as u8)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn writes_fail_once_the_client_left() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut w = ChunkWriter::new(Events::new(tx, String::new()));
        let err = w.write_all(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
