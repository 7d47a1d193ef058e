//! Where blobs are read from, as a trait every layer of the exporter can
//! name without depending on the one that provides it.
//!
//! Why a module of its own: the content store implements it, while layer
//! export, the sinks and the registry push read through it. Defining it in
//! any of them would make the others import that module, and the store
//! would depend on the code that uses it.

use std::io::Read;

/// Where layer blobs are read from (the server's content store, or a directory).
///
/// A source holds only verified blobs: the bytes behind a digest hash to it
/// (the store checks every upload before it becomes visible).
pub trait BlobSource: Send + Sync {
    /// Opens the blob with this digest (`sha256:<hex>`) for streaming.
    fn open(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>>;

    /// The stored size of a blob, when the source knows it without reading.
    fn size(&self, digest: &str) -> std::io::Result<Option<u64>> {
        let _ = digest;
        Ok(None)
    }
}
