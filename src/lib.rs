//! oxport: an out-of-process image exporter for BuildKit-style builders.
//!
//! See ARCHITECTURE.md for the code map.

pub mod error;
pub mod export;
pub mod model;

/// The generated wire types and service stubs of `oxport.exporter.v1`.
pub mod proto {
    tonic::include_proto!("oxport.exporter.v1");

    /// The encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/oxport_descriptor.bin"));
}
