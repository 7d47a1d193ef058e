//! Compiles the wire contract with protox (pure Rust, no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/oxport/exporter/v1/exporter.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("oxport_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Bulk fields decode as `Bytes` slices of the receive buffer: no copy.
    tonic_prost_build::configure()
        .bytes(".oxport.exporter.v1.WriteBlobRequest.data")
        .bytes(".oxport.exporter.v1.ConvertRequest.chunk")
        .bytes(".oxport.exporter.v1.ExportEvent.chunk")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
