//! Development entry point: `phalanx query` without building the whole
//! `phalanx` binary (handy while other crates are mid-edit).

use clap::Parser;

#[derive(Parser)]
#[command(name = "resource_query")]
struct Cli {
    #[command(flatten)]
    args: phalanx_query::QueryArgs,
}

fn main() -> std::process::ExitCode {
    match phalanx_query::run(Cli::parse().args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
