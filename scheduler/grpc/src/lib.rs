//! `phalanx serve` (the matcher as a gRPC service) and `phalanx status` (its client).
#![forbid(unsafe_code)]

/// Command-line arguments of `phalanx serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {}

/// Command-line arguments of `phalanx status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {}

/// Runs `phalanx serve` until SIGTERM or Ctrl-C.
pub async fn serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`phalanx serve` is not available in this build yet")
}

/// Runs `phalanx status`.
pub async fn status(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("`phalanx status` is not available in this build yet")
}
