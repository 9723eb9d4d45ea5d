//! Runs one scenario without the CLI (for release-build benchmarks):
//! `cargo run --release -p phalanx-sim --example simulate_scenario -- large phalanx`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "large".to_owned());
    let schedulers: Vec<String> = args
        .next()
        .unwrap_or_else(|| "phalanx".to_owned())
        .split(',')
        .map(str::to_owned)
        .collect();
    let s = phalanx_sim::load_scenario(&scenario)?;
    let seed = s.seed.unwrap_or(1);
    let runs = phalanx_sim::run_all(&s, seed, &schedulers, false)?;
    let gpus = s.cluster.nodes.iter().any(|p| p.gpus > 0);
    print!("{}", phalanx_sim::report::table(&s.name, seed, &runs, gpus));
    for r in &runs {
        println!(
            "{}: {} placements in {:.2}s wall = {:.0} placements/s",
            r.scheduler, r.placements, r.wall_secs, r.placements_per_sec
        );
    }
    Ok(())
}
