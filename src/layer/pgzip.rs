//! Block-parallel gzip, in the manner of pigz: the input is cut into blocks
//! that worker threads deflate independently. Each block is primed with the
//! last 32 KiB of the block before it, so the ratio stays close to a serial
//! encoder's, and ends with a sync flush on a byte boundary, so the blocks
//! joined in order form one standard deflate stream. Workers also compute
//! each block's CRC-32; the CRCs are combined in order for the trailer.
//!
//! The bytes depend only on the level and the block size, never on the
//! number of threads or their timing.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input per block: large enough that a sync marker per block costs nothing
/// measurable, small enough to keep every core busy on a layer of a few MiB.
pub const BLOCK_SIZE: usize = 512 * 1024;

/// Deflate's window: the dictionary a block inherits from its predecessor.
const WINDOW: usize = 32 * 1024;

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Deflated>>,
}

struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

/// A gzip writer whose deflate work runs on worker threads. Call
/// [`ParallelGz::finish`] to write the last block and the trailer.
pub struct ParallelGz<W: Write> {
    out: W,
    level: flate2::Compression,
    threads: usize,
    block: Vec<u8>,
    dict: Vec<u8>,
    /// Replies of dispatched blocks, oldest first.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    /// Started on the first full block; a small layer never starts a thread.
    jobs: Option<SyncSender<Job>>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGz<W> {
    /// Uses one worker per available core.
    pub fn new(out: W, level: flate2::Compression) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(out, level, threads)
    }

    pub fn with_threads(out: W, level: flate2::Compression, threads: usize) -> Self {
        ParallelGz {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK_SIZE),
            dict: Vec::new(),
            pending: VecDeque::new(),
            jobs: None,
            crc: Crc::new(),
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // The header flate2's GzEncoder writes: no name, mtime 0, OS unknown.
            let xfl = if self.level.level() >= 9 {
                2
            } else if self.level.level() <= 1 {
                4
            } else {
                0
            };
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn start_workers(&mut self) -> SyncSender<Job> {
        let (tx, rx) = mpsc::sync_channel::<Job>(self.threads);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..self.threads {
            let rx = Arc::clone(&rx);
            let level = self.level;
            std::thread::Builder::new()
                .name("oxport-gzip".into())
                .spawn(move || worker(&rx, level))
                .expect("spawn a gzip worker");
        }
        self.jobs = Some(tx.clone());
        tx
    }

    /// Hands the current block to the workers, first writing out finished
    /// blocks so that at most a few are in flight.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.pending.len() > 2 * self.threads {
            self.write_oldest()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let (reply, done) = mpsc::sync_channel(1);
        let jobs = match &self.jobs {
            Some(j) => j.clone(),
            None => self.start_workers(),
        };
        jobs.send(Job {
            data,
            dict,
            last,
            reply,
        })
        .map_err(|_| io::Error::other("the gzip workers stopped"))?;
        self.pending.push_back(done);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(done) = self.pending.pop_front() else {
            return Ok(());
        };
        let block = done
            .recv()
            .map_err(|_| io::Error::other("a gzip worker failed"))??;
        self.crc.combine(&block.crc);
        self.write_header()?;
        self.out.write_all(&block.bytes)
    }

    /// Compresses what is left, writes the trailer, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.jobs.is_none() {
            // Everything fits one block: deflate it here.
            let mut c = Compress::new(self.level, false);
            let block = deflate_block(&mut c, &self.block, &[], true)?;
            self.crc.combine(&block.crc);
            self.write_header()?;
            self.out.write_all(&block.bytes)?;
        } else {
            self.dispatch(true)?;
            while !self.pending.is_empty() {
                self.write_oldest()?;
            }
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        self.jobs = None;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.len() == BLOCK_SIZE {
            self.dispatch(false)?;
        }
        let n = buf.len().min(BLOCK_SIZE - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Output is written as blocks finish; flushing never cuts a block short
    /// (that would make the bytes depend on how the input was written).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, level: flate2::Compression) {
    let mut c = Compress::new(level, false);
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        c.reset();
        let result = deflate_block(&mut c, &job.data, &job.dict, job.last);
        // The encoder may have gone away after an error; nothing to do then.
        let _ = job.reply.send(result);
    }
}

/// Deflates one block after priming with `dict`; ends it with a sync flush,
/// or with the final block when `last`.
fn deflate_block(c: &mut Compress, data: &[u8], dict: &[u8], last: bool) -> io::Result<Deflated> {
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut crc = Crc::new();
    crc.update(data);
    let mut bytes = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut consumed = 0usize;
    loop {
        let before = c.total_in();
        let status = c
            .compress_vec(&data[consumed..], &mut bytes, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        let room_left = bytes.len() < bytes.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once deflate returns with output space to spare.
            _ if !last && consumed == data.len() && room_left => break,
            _ => bytes.reserve(64 * 1024),
        }
    }
    Ok(Deflated { bytes, crc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial: text-like lines with varying numbers.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            let line = format!(
                "{i:08} lib/x86_64/libfoo.so.{} {:x}\n",
                i % 97,
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40
            );
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn compress(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut gz = ParallelGz::with_threads(Vec::new(), flate2::Compression::new(6), threads);
        for p in data.chunks(piece.max(1)) {
            gz.write_all(p).unwrap();
        }
        gz.finish().unwrap()
    }

    #[test]
    fn round_trips_across_block_boundaries() {
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            3 * BLOCK_SIZE + 12345,
        ] {
            let data = sample(len);
            let gz = compress(&data, 2, 100_000);
            assert_eq!(gunzip(&gz), data, "length {len}");
        }
    }

    #[test]
    fn bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * BLOCK_SIZE / 2);
        let a = compress(&data, 1, 7_777);
        let b = compress(&data, 3, 1 << 20);
        assert_eq!(a, b);
    }

    #[test]
    fn ratio_is_close_to_a_serial_encoder() {
        let data = sample(4 * BLOCK_SIZE);
        let ours = compress(&data, 2, 1 << 16).len() as f64;
        let mut serial = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        serial.write_all(&data).unwrap();
        let serial = serial.finish().unwrap().len() as f64;
        assert!(ours <= serial * 1.02, "{ours} vs {serial}");
    }

    #[test]
    fn the_gzip_tool_accepts_the_stream() {
        // An independent decoder, when one is installed.
        let Ok(mut child) = std::process::Command::new("gzip")
            .arg("-t")
            .stdin(std::process::Stdio::piped())
            .spawn()
        else {
            return;
        };
        let gz = compress(&sample(2 * BLOCK_SIZE + 99), 2, 1 << 16);
        child.stdin.take().unwrap().write_all(&gz).unwrap();
        assert!(child.wait().unwrap().success());
    }
}
