//! The progress of blobs written to an export's output.
//!
//! Why a module of its own: the sinks emit these events, the wire encodes
//! them and the client shows them. Each of those imports this small type
//! instead of the export entry point that happens to pass them along.

/// A progress event of one blob written to the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Writing {
        digest: String,
        done: u64,
        total: u64,
    },
    Skipped {
        digest: String,
        total: u64,
    },
    Mounted {
        digest: String,
        total: u64,
    },
    Done {
        digest: String,
        total: u64,
    },
}
