//! Compiles `fluxion.proto` with protox (pure Rust), so no system protoc is
//! needed, and writes the encoded file descriptor set next to the generated
//! code for gRPC server reflection.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=fluxion.proto");
    let fds = protox::compile(["fluxion.proto"], ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("fluxion_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
