//! The `phalanx.fluxion.v1` gRPC API.
#![forbid(unsafe_code)]
