//! `phalanx query`: a drop-in for Fluxion's `resource-query`.
//!
//! Loads a graph file (GRUG or JGF), then reads commands on stdin (`match
//! allocate FILE`, `cancel ID`, `find EXPR`, `info ID`, `stat`, `quit`, ...)
//! and prints what resource-query prints, to the `-t` file or stdout.
#![forbid(unsafe_code)]

mod cancel_walk;
mod find;
mod r_reader;
mod shell;
mod spec_cache;

use std::path::PathBuf;

use anyhow::Context as _;

/// Command-line arguments of `phalanx query` (resource-query's options).
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Graph file to load.
    #[arg(short = 'L', long = "load-file")]
    pub load_file: Option<PathBuf>,
    /// Format of the graph file: grug, jgf, rv1exec or hwloc.
    #[arg(short = 'f', long = "load-format", default_value = "grug")]
    pub load_format: String,
    /// Types to keep from an hwloc graph (`-f hwloc`), e.g. node,socket,core,gpu,storage.
    #[arg(short = 'W', long = "load-allowlist")]
    pub load_allowlist: Option<String>,
    /// Match subsystems: CA (containment), PA (power), C+PA, IBA, ... as in
    /// resource-query; the first one named is the one a match walks.
    #[arg(short = 'S', long = "match-subsystems", default_value = "CA")]
    pub match_subsystems: String,
    /// Match policy: first, high, low, lonode, hinode, lonodex, hinodex, locality, variation.
    #[arg(short = 'P', long = "match-policy", default_value = "first")]
    pub match_policy: String,
    /// Match output format: simple, pretty_simple, jgf, rv1_nosched.
    #[arg(short = 'F', long = "match-format", default_value = "simple")]
    pub match_format: String,
    /// Prune filters, e.g. ALL:core,rack:node.
    #[arg(short = 'p', long = "prune-filters", default_value = "ALL:core")]
    pub prune_filters: String,
    /// Graph output format (accepted for compatibility).
    #[arg(short = 'g', long = "graph-format")]
    pub graph_format: Option<String>,
    /// Graph output basename (accepted for compatibility).
    #[arg(short = 'o', long = "graph-output")]
    pub graph_output: Option<String>,
    /// Write match output to this file instead of stdout.
    #[arg(short = 't', long = "test-output")]
    pub test_output: Option<PathBuf>,
    /// Reserve vertex vector size (accepted for compatibility).
    #[arg(short = 'r', long = "reserve-vtx-vec")]
    pub reserve_vtx_vec: Option<u64>,
    /// Traverser: simple, or flexible (sibling slots are alternatives).
    #[arg(short = 'T', long = "traverser", default_value = "simple")]
    pub traverser: String,
    /// Print the time each match takes, and visit counts.
    #[arg(short = 'e', long = "elapse-time")]
    pub elapse_time: bool,
    /// Most vertices the graph may have (loaded, grown with `attach`), up to 16777216.
    #[arg(
        long = "max-vertices",
        default_value_t = fluxion_core::graph::DEFAULT_MAX_VERTICES,
        value_parser = max_vertices
    )]
    pub max_vertices: usize,
    /// Do not print the prompt.
    #[arg(short = 'd', long = "disable-prompt")]
    pub disable_prompt: bool,
}

/// Parses `--max-vertices`: a whole number up to the graph's ceiling.
fn max_vertices(s: &str) -> Result<usize, String> {
    use fluxion_core::graph::MAX_VERTICES_CEILING;
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_VERTICES_CEILING).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_VERTICES_CEILING}"
        )),
    }
}

/// Runs `phalanx query`: loads the graph, then serves commands from stdin
/// until `quit` or end of input. Meant to be the last thing a process does:
/// the session's memory is left for the process exit to return.
pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let mut session = shell::Session::open(&args).context("phalanx query")?;
    let stdin = std::io::stdin();
    let result = session.serve(stdin.lock());
    // A large graph is millions of small allocations; freeing them one by
    // one took about 70 ms for the 10,000-node graph holding 60 jobs.
    // `serve` has flushed the output, and the process exits next, which
    // returns the memory at once.
    std::mem::forget(session);
    result
}
