//! `phalanx run`: the Kubernetes secondary scheduler around the gang core.
#![forbid(unsafe_code)]

/// Command-line arguments of `phalanx run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {}

/// Runs the scheduler until SIGTERM or Ctrl-C.
pub async fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`phalanx run` is not available in this build yet")
}
