//! `phalanx query`.
#![forbid(unsafe_code)]

/// Command-line arguments of `phalanx query`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {}

/// Runs `phalanx query`.
pub fn run(_args: QueryArgs) -> anyhow::Result<()> {
    anyhow::bail!("`phalanx query` is not available in this build yet")
}
