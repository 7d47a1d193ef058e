//! The `Convert` handler: the input tar is spooled to a scratch file (an
//! archive is read by offset, so it must be seekable), converted on the
//! blocking pool, and streamed back through the same bounded chunk channel
//! as an export's output.
//!
//! The conversion takes its slot in the export queue only once the whole
//! input is spooled: a client that sends slowly, or nothing, holds a request
//! slot (and is cut off by `--stream-idle-timeout`), never an export slot.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use tracing::{info, Instrument};

use super::admission::ExportQueue;
use super::output::{ChunkWriter, Events, CHANNEL_DEPTH};
use super::service::next_chunk;
use super::status::to_status;
use crate::convert::{self, Form};
use crate::error::ExportError;
use crate::image::archive::ArchiveSource;
use crate::limits::Limits;
use crate::proto::{self, export_event::Event};
use crate::sink::{Sink as _, TarSink};
use crate::store::Store;

pub type ConvertStream = tokio_stream::wrappers::ReceiverStream<Result<proto::ExportEvent, Status>>;

/// Receives the input, then starts the conversion; the returned stream
/// carries its output.
pub async fn convert(
    store: Arc<Store>,
    mut input: Streaming<proto::ConvertRequest>,
    request_id: String,
    queue: Arc<ExportQueue>,
    limits: Limits,
) -> Result<ConvertStream, Status> {
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let invalid = |m: String| to_status(&ExportError::invalid("to", m));
    let first = next_chunk(&mut input, deadline, &limits, 0)
        .await?
        .ok_or_else(|| invalid("empty request: no message was sent".into()))?;
    let to: Form = first.to.parse().map_err(invalid)?;
    let internal = |e: std::io::Error| to_status(&ExportError::from(e).context("scratch"));
    let spool = tempfile::Builder::new()
        .prefix("convert-")
        .tempfile_in(store.scratch_dir())
        .map_err(internal)?;
    let (std_file, path) = spool.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut chunk = first.chunk;
    let mut received = 0u64;
    loop {
        file.write_all(&chunk).await.map_err(internal)?;
        received += chunk.len() as u64;
        match next_chunk(&mut input, deadline, &limits, received).await? {
            Some(next) => chunk = next.chunk,
            None => break,
        }
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    info!(bytes = received, to = to.as_str(), "convert input received");
    let permit = queue.admit(deadline).await?;

    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let events = Events::new(tx, request_id).with_deadline(deadline.into_std());
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _permit = permit;
        run(&path, to, events);
        // The spooled input goes when the conversion ends.
        drop(path);
    });
    tokio::spawn(
        async move {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "convert task panicked");
            }
        }
        .in_current_span(),
    );
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn run(path: &std::path::Path, to: Form, events: Events) {
    let mut out = ChunkWriter::new(events.clone());
    let result = ArchiveSource::open(path).and_then(|src| {
        let conv = convert::plan(&src, to, None)?;
        TarSink::new(&mut out).write(&conv.layout.over(&src), &mut |_| {})?;
        std::io::Write::flush(&mut out)?;
        Ok(conv.changes)
    });
    match result {
        Ok(changes) => {
            info!(
                changes = changes.len(),
                bytes = out.bytes_sent(),
                "convert done"
            );
            let mut response: std::collections::HashMap<String, String> = changes
                .iter()
                .map(|c| (c.location.clone(), format!("{} {}", c.from, c.to)))
                .collect();
            response.insert("changes".into(), changes.len().to_string());
            let _ = events.send(Event::Done(proto::ExportDone { response }));
        }
        Err(_) if events.deadline_passed() => events.send_deadline_error(),
        Err(_) if events.is_closed() => info!("convert stopped: the client went away"),
        Err(e) => {
            info!(error = %e.message, "convert failed");
            let _ = events.send_error(to_status(&e));
        }
    }
}
