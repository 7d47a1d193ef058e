//! oxport: an out-of-process image exporter for BuildKit-style builders.
//!
//! A request flows one way: wire or CLI -> [`model`] -> [`options`] ->
//! [`layer`] (the only I/O before the sink) -> [`assemble`] (pure) ->
//! [`sink`] -> bytes out. See ARCHITECTURE.md for the code map.

pub mod alloc;
pub mod annotations;
pub mod assemble;
pub mod attach;
pub mod blob;
pub mod casefile;
pub mod cli;
pub mod client;
pub mod convert;
pub mod destination;
pub mod digest;
pub mod direct_io;
pub mod error;
pub mod export;
pub mod fuzzing;
pub mod image;
pub mod inspect;
pub mod json;
pub mod layer;
pub mod limits;
pub mod metrics;
pub mod model;
#[cfg(test)]
mod module_layers;
pub mod oci;
pub mod options;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod selfimage;
pub mod server;
pub mod sign;
pub mod sink;
pub mod spdx;
pub mod store;
#[cfg(test)]
pub(crate) mod testdata;
pub mod timefmt;
pub mod untrusted;
pub mod ustar;
pub mod wire;

/// The generated wire types and service stubs of `oxport.exporter.v1`.
pub mod proto {
    tonic::include_proto!("oxport.exporter.v1");

    /// The encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/oxport_descriptor.bin"));
}
