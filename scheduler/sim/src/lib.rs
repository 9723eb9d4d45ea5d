//! `phalanx simulate`.
#![forbid(unsafe_code)]

/// Command-line arguments of `phalanx simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {}

/// Runs `phalanx simulate`.
pub fn run(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`phalanx simulate` is not available in this build yet")
}
