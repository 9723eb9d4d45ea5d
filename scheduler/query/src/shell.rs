//! The command shell: parses stdin lines and runs them against the matcher.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Read as _, Write};
use std::time::Instant;

use anyhow::{Context as _, bail};
use fluxion_core::graph::GraphLimits;
use fluxion_core::graph::{PruneFilters, RecordsAbove, ResourceGraph, Status, VertexId};
use fluxion_core::io::{
    attach_jgf, read_grug_with, read_hwloc_with, read_jgf_with, read_rv1exec_with,
};
use fluxion_core::jobspec::{Jobspec, Resource};
use fluxion_core::matcher::{CancelError, Emit, MatchError, MatchOp, Matcher, Policy};
use fluxion_core::writers::{Format, render, render_into};

use crate::QueryArgs;
use crate::cancel_walk::cancel_walk_counts;
use crate::find;
use crate::r_reader::{
    jgf_emits, jgf_nodes, nodes_of_ranks, parse_idset, rv1exec_emits, rv1exec_nodes,
};
use crate::spec_cache::SpecCache;

/// Why a jobspec file gave no text.
enum JobspecFile {
    /// It cannot be read (missing, a directory, no permission).
    Unreadable,
    /// It was read, but is too large or not UTF-8.
    Invalid(fluxion_core::jobspec::JobspecError),
}

/// Reads a jobspec file: its size is checked before it is read, and
/// bytes that are not UTF-8 are a jobspec error, not a missing file.
/// (At most one byte past the limit is read: enough to know it is over.)
fn read_jobspec(file: &str) -> Result<String, JobspecFile> {
    use fluxion_core::jobspec::MAX_JOBSPEC_BYTES;
    let meta = std::fs::metadata(file).map_err(|_| JobspecFile::Unreadable)?;
    if !meta.is_file() {
        return Err(JobspecFile::Unreadable);
    }
    let mut bytes = Vec::new();
    let f = File::open(file).map_err(|_| JobspecFile::Unreadable)?;
    std::io::Read::take(f, MAX_JOBSPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| JobspecFile::Unreadable)?;
    Jobspec::text(&bytes)
        .map(str::to_string)
        .map_err(JobspecFile::Invalid)
}

/// Types resource-query knows whatever the graph holds (Fluxion interns
/// them at start), so a jobspec naming one the graph lacks is merely
/// unmatched (an alternative slot asking for GPUs on a graph without any),
/// while any other unknown type is a jobspec error.
const FLUXION_TYPES: [&str; 8] = [
    "cluster", "core", "socket", "gpu", "node", "rack", "slot", "ssd",
];

/// resource-query's jobspec error for a resource type it does not know.
const UNKNOWN_TYPE: &str = "Value of \"type\" must be a resource type known to fluxion";

/// What the shell remembers of a job (for `info` and `list`).
struct JobMeta {
    state: &'static str,
    at: i64,
    jobspec: String,
    overhead: f64,
}

/// One `phalanx query` session.
pub(crate) struct Session {
    matcher: Matcher,
    format: Format,
    out: Box<dyn Write>,
    elapse: bool,
    prompt: bool,
    next_job: u64,
    jobs: BTreeMap<u64, JobMeta>,
    specs: SpecCache,
    /// Where error lines go (stderr; a buffer in tests).
    errs: Box<dyn Write>,
    /// The text of the last match, kept so its pages stay mapped.
    rendered: String,
    /// Matches timed into `perf_*` (jobs recorded by `update` are not).
    perf_count: u64,
    perf_min: f64,
    perf_max: f64,
    perf_sum: f64,
}

fn load_graph(args: &QueryArgs) -> anyhow::Result<ResourceGraph> {
    let Some(path) = &args.load_file else {
        bail!("no graph file given (use -L FILE)");
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("can't read graph file {}", path.display()))?;
    let limits = GraphLimits {
        max_vertices: args.max_vertices,
    };
    let g = match args.load_format.as_str() {
        "grug" => read_grug_with(&text, limits)?,
        "jgf" => read_jgf_with(&text, limits)?,
        "rv1exec" => read_rv1exec_with(&text, limits)?,
        "hwloc" => {
            let allow: Vec<String> = args
                .load_allowlist
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            read_hwloc_with(&text, &allow, limits)?
        }
        other => bail!("unsupported graph format '{other}' (supported: grug, jgf, rv1exec, hwloc)"),
    };
    Ok(g)
}

/// The subsystems a `-S` name walks, dominant first (resource-query's
/// table; case does not matter).
fn subsystems_of(name: &str) -> anyhow::Result<&'static [&'static str]> {
    const TABLE: [(&str, &[&str]); 14] = [
        ("CA", &["containment"]),
        ("IBA", &["ibnet"]),
        ("IBBA", &["ibnetbw"]),
        ("PA", &["power"]),
        ("PFS1BA", &["pfs1bw"]),
        ("C+IBA", &["containment", "ibnet"]),
        ("C+IBBA", &["containment", "ibnetbw"]),
        ("C+PA", &["containment", "power"]),
        ("C+PFS1BA", &["containment", "pfs1bw"]),
        ("IB+IBBA", &["ibnet", "ibnetbw"]),
        ("C+P+IBA", &["containment", "power", "ibnet"]),
        ("V+PFS1BA", &["virtual1", "pfs1bw"]),
        ("VA", &["virtual1"]),
        (
            "ALL",
            &["containment", "ibnet", "ibnetbw", "pfs1bw", "power"],
        ),
    ];
    TABLE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let known: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
            anyhow::anyhow!(
                "-S/--match-subsystems: unknown '{name}' (known: {})",
                known.join(", ")
            )
        })
}

/// Makes the first of `walked` the graph's dominant subsystem (the one a
/// match walks). The others are auxiliary: like Fluxion's up-walks, they
/// add nothing to what a match selects, so they only need to exist.
fn use_subsystems(g: &mut ResourceGraph, walked: &[&str], name: &str) -> anyhow::Result<()> {
    let Some(&dominant) = walked.first() else {
        return Ok(());
    };
    if !g.has_subsystem(dominant) {
        bail!("-S/--match-subsystems {name}: the graph has no '{dominant}' subsystem");
    }
    g.select_dominant(dominant)
        .with_context(|| format!("-S/--match-subsystems {name}"))?;
    Ok(())
}

impl Session {
    /// Loads the graph and applies the options.
    pub(crate) fn open(args: &QueryArgs) -> anyhow::Result<Session> {
        let policy: Policy = args.match_policy.parse()?;
        let format: Format = args.match_format.parse()?;
        let filters: PruneFilters = args.prune_filters.parse()?;
        let or_slots = match args.traverser.as_str() {
            "simple" => false,
            "flexible" => true,
            other => bail!("unknown traverser '{other}' (expected simple or flexible)"),
        };
        let walked = subsystems_of(&args.match_subsystems)?;
        let start = Instant::now();
        let mut g = load_graph(args)?;
        use_subsystems(&mut g, walked, &args.match_subsystems)?;
        g.set_prune_filters(&filters)?;
        let load = start.elapsed().as_secs_f64();
        let out: Box<dyn Write> = match &args.test_output {
            Some(p) => Box::new(BufWriter::new(
                File::create(p).with_context(|| format!("can't create {}", p.display()))?,
            )),
            // Buffered: an answer is thousands of lines, and `serve`
            // flushes after every command (and before anything goes to
            // stdout or stderr directly), so the order stays the same.
            None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
        };
        if args.elapse_time {
            println!("INFO: Graph Load Time: {load:.6}");
        }
        let mut matcher = Matcher::new(g, policy);
        matcher.set_or_slots(or_slots);
        Ok(Session {
            matcher,
            format,
            out,
            elapse: args.elapse_time,
            prompt: !args.disable_prompt,
            next_job: 1,
            jobs: BTreeMap::new(),
            specs: SpecCache::default(),
            errs: Box::new(std::io::stderr()),
            rendered: String::new(),
            perf_count: 0,
            perf_min: f64::MAX,
            perf_max: 0.0,
            perf_sum: 0.0,
        })
    }

    /// Runs commands until `quit` or end of input. A line that is not
    /// UTF-8, or longer than [`MAX_LINE_BYTES`], is an error for that line
    /// alone.
    pub(crate) fn serve(&mut self, mut input: impl BufRead) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        let mut number = 0u64;
        loop {
            if self.prompt {
                print!("resource-query> ");
                let _ = std::io::stdout().flush();
            }
            let Some(overlong) = read_line(&mut input, &mut buf).context("reading stdin")? else {
                break;
            };
            number += 1;
            if overlong {
                self.err(&format!(
                    "ERROR: line {number}: longer than the limit of {MAX_LINE_BYTES} bytes; ignored"
                ));
                continue;
            }
            let line = match std::str::from_utf8(&buf) {
                Ok(l) => l,
                Err(e) => {
                    self.err(&format!(
                        "ERROR: line {number}: not UTF-8 text (invalid byte at offset {}); ignored",
                        e.valid_up_to()
                    ));
                    continue;
                }
            };
            let tokens: Vec<&str> = line.split_whitespace().collect();
            if tokens.is_empty() {
                continue;
            }
            let quit = self.command(&tokens);
            self.out.flush().context("writing output")?;
            if quit {
                break;
            }
        }
        self.out.flush().context("writing output")?;
        Ok(())
    }

    /// Writes an error line to stderr after flushing the output file, so a
    /// file that also receives stderr keeps the order resource-query has.
    fn err(&mut self, msg: &str) {
        let _ = self.out.flush();
        let _ = writeln!(self.errs, "{msg}");
    }

    fn command(&mut self, t: &[&str]) -> bool {
        match t[0] {
            "match" | "m" => self.cmd_match(t),
            "multi-match" | "M" => self.cmd_multi_match(t),
            "cancel" | "c" => self.cmd_cancel(t),
            "partial-cancel" | "pc" => self.cmd_partial_cancel(t),
            "find" | "f" => self.cmd_find(t),
            "info" | "i" => self.cmd_info(t),
            "list" | "l" => self.cmd_list(),
            "stat" | "s" => self.cmd_stat(t),
            "set-status" | "t" => self.cmd_set_status(t),
            "get-status" | "e" => self.cmd_get_status(t),
            "set-property" | "p" => self.cmd_set_property(t),
            "get-property" | "g" => self.cmd_get_property(t),
            "remove" => self.cmd_remove(t),
            "attach" | "j" => self.cmd_attach(t),
            "update" => self.cmd_update(t),
            "cat" | "a" => self.cmd_cat(t),
            "help" | "h" => self.cmd_help(),
            "quit" | "q" => return true,
            // A comment, as test scripts write them.
            c if c.starts_with('#') => {}
            other => {
                let shown: String = other.chars().take(40).collect();
                self.err(&format!(
                    "ERROR: unknown command '{shown}' (`help` lists the commands)"
                ));
            }
        }
        false
    }

    fn parse_op(&mut self, sub: &str) -> Option<MatchOp> {
        Some(match sub {
            "allocate" => MatchOp::Allocate,
            "allocate_orelse_reserve" => MatchOp::AllocateOrElseReserve,
            "allocate_with_satisfiability" => MatchOp::AllocateWithSatisfiability,
            "satisfiability" => MatchOp::Satisfiability,
            _ => {
                self.err(&format!("ERROR: unknown subcmd {sub}"));
                return None;
            }
        })
    }

    fn cmd_match(&mut self, t: &[&str]) {
        if t.len() != 3 {
            self.err("ERROR: malformed command");
            return;
        }
        if let Some(op) = self.parse_op(t[1]) {
            self.run_match(op, t[2]);
        }
    }

    fn cmd_multi_match(&mut self, t: &[&str]) {
        if t.len() <= 3 {
            self.err("ERROR: malformed command");
            return;
        }
        if let Some(op) = self.parse_op(t[1]) {
            for f in &t[2..] {
                if !self.run_match(op, f) {
                    break;
                }
            }
        }
    }

    fn unknown_type(&self, r: &Resource) -> bool {
        let known = r.is_slot() || self.knows_type(&r.kind);
        !known || r.with.iter().any(|c| self.unknown_type(c))
    }

    /// Whether resource-query would know resource type `t`: one it interns
    /// at start, a slot, or one of the graph's.
    fn knows_type(&self, t: &str) -> bool {
        t == "or_slot"
            || t == fluxion_core::jobspec::XOR_SLOT
            || FLUXION_TYPES.contains(&t)
            || self.matcher.graph().type_id(t).is_some()
    }

    /// Whether a top-level request below the graph's root asks for more
    /// vertices of its type than the whole graph has (`node: 3` on two
    /// nodes). resource-query answers `allocate_orelse_reserve` for such a
    /// request as busy, without the "Unsatisfiable request" line it prints
    /// for every other request that can never fit; the shell does the same
    /// so scripts reading its output see what they would from Fluxion.
    fn top_level_outnumbers_graph(&self, spec: &Jobspec) -> bool {
        let g = self.matcher.graph();
        let root_kind = g.root().and_then(|r| g.vertex(r)).map(|x| x.kind);
        spec.resources.iter().any(|r| {
            let Some(t) = g.type_id(&r.kind) else {
                return false;
            };
            if r.is_slot() || Some(t) == root_kind {
                return false;
            }
            let have = g
                .vertices()
                .filter(|&v| g.vertex(v).is_some_and(|x| x.kind == t))
                .count() as u64;
            r.count.min > have
        })
    }

    /// Runs one match and prints its result; returns whether it matched.
    fn run_match(&mut self, op: MatchOp, file: &str) -> bool {
        let job = self.next_job;
        let text = match read_jobspec(file) {
            Ok(t) => Ok(t),
            Err(JobspecFile::Unreadable) => {
                self.err(&format!("ERROR: can't open {file}"));
                return false;
            }
            Err(JobspecFile::Invalid(e)) => Err(format!("{file}: {e}")),
        };
        let start = Instant::now();
        let spec = text
            .and_then(|text| {
                self.specs.parse(&text).map_err(|e| {
                    // Fluxion checks a resource's type before anything
                    // else about it: an unknown one is the error it reports.
                    let types = Jobspec::resource_types(&text).unwrap_or_default();
                    match types.iter().any(|t| !self.knows_type(t)) {
                        true => UNKNOWN_TYPE.to_string(),
                        false => e.to_string(),
                    }
                })
            })
            .and_then(|s| {
                if s.resources.iter().any(|r| self.unknown_type(r)) {
                    Err(UNKNOWN_TYPE.to_string())
                } else {
                    Ok(s)
                }
            });
        let spec = match spec {
            Ok(s) => {
                // Only a valid jobspec consumes a job id (as in resource-query).
                if op != MatchOp::Satisfiability {
                    self.next_job = self.next_job.saturating_add(1);
                }
                s
            }
            Err(e) => {
                self.err(&format!(
                    "match_allocate: ERROR: Jobspec error for {job}: {e}"
                ));
                let elapsed = start.elapsed().as_secs_f64();
                self.print_failure(op, job, true, elapsed, 0, 0);
                return false;
            }
        };
        let result = self.matcher.match_jobspec(op, job, &spec, 0);
        match result {
            Ok(o) => {
                self.rendered.clear();
                if op != MatchOp::Satisfiability {
                    render_into(
                        &mut self.rendered,
                        self.matcher.graph(),
                        &o.emitted,
                        self.format,
                        o.at,
                        o.duration,
                        None,
                    );
                }
                let elapsed = start.elapsed().as_secs_f64();
                let _ = self.out.write_all(self.rendered.as_bytes());
                if op == MatchOp::Satisfiability {
                    self.print_sat(true, elapsed, o.preorder_visits, o.postorder_visits);
                } else {
                    self.perf(elapsed);
                    let mode = self.print_placed(job, o.reserved, o.at);
                    if self.elapse {
                        let _ = self.out.flush();
                        print_stats(Some(elapsed), o.preorder_visits, o.postorder_visits);
                    }
                    let _ = writeln!(self.out, "INFO: =============================");
                    self.jobs.insert(
                        job,
                        JobMeta {
                            state: mode,
                            at: o.at,
                            jobspec: file.to_string(),
                            overhead: elapsed,
                        },
                    );
                }
                true
            }
            Err(e) => {
                let elapsed = start.elapsed().as_secs_f64();
                let sat = match e {
                    MatchError::Unsatisfiable => {
                        op == MatchOp::Allocate
                            || (op == MatchOp::AllocateOrElseReserve
                                && self.top_level_outnumbers_graph(&spec))
                    }
                    MatchError::Busy => true,
                    MatchError::JobExists(_)
                    | MatchError::Graph(_)
                    | MatchError::InvalidJobspec(_) => {
                        self.err(&format!("match_allocate: ERROR: {e}"));
                        true
                    }
                };
                self.print_failure(op, job, sat, elapsed, 0, 0);
                false
            }
        }
    }

    /// The lines after a placement's vertices, up to the closing rule.
    /// Returns the state written (`ALLOCATED` or `RESERVED`).
    fn print_placed(&mut self, job: u64, reserved: bool, at: i64) -> &'static str {
        let mode = if reserved { "RESERVED" } else { "ALLOCATED" };
        let _ = writeln!(self.out, "INFO: =============================");
        let _ = writeln!(self.out, "INFO: JOBID={job}");
        let _ = writeln!(self.out, "INFO: RESOURCES={mode}");
        if at == 0 {
            let _ = writeln!(self.out, "INFO: SCHEDULED AT=Now");
        } else {
            let _ = writeln!(self.out, "INFO: SCHEDULED AT={at}");
        }
        mode
    }

    /// `update allocate|allocate_orelse_reserve jgf|rv1exec FILE JOBID AT
    /// DURATION` records a placement made elsewhere. (As in resource-query,
    /// `update` has no `attach`: that is the `attach` command.)
    fn cmd_update(&mut self, t: &[&str]) {
        if t.len() != 7 {
            self.err("ERROR: malformed command");
            return;
        }
        let reserve = match t[1] {
            "allocate" => false,
            // Fluxion's own tests spell it `reserve`.
            "allocate_orelse_reserve" | "reserve" => true,
            sub => {
                self.err(&format!("ERROR: unknown subcmd {sub}"));
                return;
            }
        };
        let Some(job) = self.job_id(t[4]) else {
            return;
        };
        if self.matcher.info(job).is_some() {
            self.err("ERROR: existing Jobid ");
            return;
        }
        let at = match t[5].parse::<i64>() {
            Ok(at) if at >= 0 => at,
            _ => {
                self.err(&format!(
                    "ERROR: update: AT '{}': expected a whole number from 0 to {}",
                    t[5],
                    i64::MAX
                ));
                return;
            }
        };
        let duration = match t[6].parse::<u64>() {
            Ok(d) if d > 0 => d,
            _ => {
                self.err(&format!(
                    "ERROR: update: DURATION '{}': expected a whole number from 1 to {}",
                    t[6],
                    u64::MAX
                ));
                return;
            }
        };
        let Ok(text) = std::fs::read_to_string(t[3]) else {
            self.err(&format!("ERROR: can't open {}", t[3]));
            return;
        };
        let emitted = match t[2] {
            "rv1exec" => rv1exec_emits(self.matcher.graph(), &text),
            "jgf" => jgf_emits(self.matcher.graph(), &text).map(|e| (e, Vec::new())),
            other => Err(format!("unsupported reader {other}")),
        };
        let reserved = reserve && at > 0;
        let result = emitted.and_then(|(emitted, passing)| {
            self.matcher
                .adopt_passing(job, at, duration, reserved, emitted, &passing)
                .map_err(|e| e.to_string())
        });
        // As in resource-query, the id is used up either way, and a refused
        // update (nothing held) reports its job like a failed match.
        self.next_job = job.saturating_add(1);
        if let Err(e) = result {
            self.err(&format!("ERROR: update: job {job}: {e}"));
            self.print_failure(MatchOp::Allocate, job, true, 0.0, 0, 0);
            return;
        }
        let Some(info) = self.matcher.info(job) else {
            return;
        };
        self.rendered.clear();
        render_into(
            &mut self.rendered,
            self.matcher.graph(),
            &info.emitted,
            self.format,
            at,
            duration,
            None,
        );
        let _ = self.out.write_all(self.rendered.as_bytes());
        let mode = self.print_placed(job, reserved, at);
        let _ = writeln!(self.out, "INFO: =============================");
        self.jobs.insert(
            job,
            JobMeta {
                state: mode,
                at,
                jobspec: t[3].to_string(),
                overhead: 0.0,
            },
        );
    }

    /// A job id argument, or `None` after an error naming it.
    fn job_id(&mut self, arg: &str) -> Option<u64> {
        match parse_id(arg) {
            Ok(j) => Some(j),
            Err(e) => {
                self.err(&format!("ERROR: {e}"));
                None
            }
        }
    }

    fn perf(&mut self, elapsed: f64) {
        self.perf_count += 1;
        self.perf_min = self.perf_min.min(elapsed);
        self.perf_max = self.perf_max.max(elapsed);
        self.perf_sum += elapsed;
    }

    fn print_sat(&mut self, sat: bool, elapsed: f64, pre: u64, post: u64) {
        let s = if sat { "Satisfiable" } else { "Unsatisfiable" };
        let _ = writeln!(self.out, "INFO: =============================");
        let _ = writeln!(self.out, "INFO: {s} request");
        let _ = writeln!(self.out, "INFO: =============================");
        if self.elapse {
            let _ = self.out.flush();
            print_stats(Some(elapsed), pre, post);
        }
    }

    fn print_failure(
        &mut self,
        op: MatchOp,
        job: u64,
        sat: bool,
        elapsed: f64,
        pre: u64,
        post: u64,
    ) {
        if op == MatchOp::Satisfiability {
            self.print_sat(false, elapsed, pre, post);
            return;
        }
        let _ = writeln!(self.out, "INFO: =============================");
        let _ = writeln!(self.out, "INFO: No matching resources found");
        if !sat {
            let _ = writeln!(self.out, "INFO: Unsatisfiable request");
        }
        let _ = writeln!(self.out, "INFO: JOBID={job}");
        if self.elapse {
            let _ = writeln!(self.out, "INFO: ELAPSE={elapsed:.9}");
            let _ = self.out.flush();
            print_stats(None, pre, post);
        }
        let _ = writeln!(self.out, "INFO: =============================");
    }

    fn cmd_cancel(&mut self, t: &[&str]) {
        if t.len() < 2 || t.len() > 3 {
            self.err("ERROR: malformed command");
            return;
        }
        let Some(job) = self.job_id(t[1]) else {
            return;
        };
        // The walk's counts are printed only on request; most cancels skip it.
        let stats = t.get(2) == Some(&"stats");
        let visits = self.matcher.info(job).filter(|_| stats).map(|info| {
            let tagged = info.emitted.iter().map(|e| e.vertex);
            cancel_walk_counts(self.matcher.graph(), tagged)
        });
        match self.matcher.cancel(job) {
            Ok(_) => {
                if let Some(m) = self.jobs.get_mut(&job) {
                    m.state = "CANCELED";
                }
            }
            Err(CancelError::NoSuchJob(_)) => {
                self.err(&format!("cancel: ERROR: nonexistent job {job}"));
                return;
            }
            Err(_) => self.err(&format!(
                "ERROR: error encountered while removing job {job}"
            )),
        }
        if stats {
            let _ = writeln!(self.out, "INFO: =============================");
            let (pre, post) = visits.unwrap_or_default();
            let _ = writeln!(self.out, "INFO: CANCEL PREORDER COUNT=\"{pre}\"");
            let _ = writeln!(self.out, "INFO: CANCEL POSTORDER COUNT=\"{post}\"");
            let _ = writeln!(self.out, "INFO: =============================");
        }
    }

    fn cmd_partial_cancel(&mut self, t: &[&str]) {
        if t.len() < 4 || t.len() > 5 {
            self.err("ERROR: malformed command");
            return;
        }
        let Some(job) = self.job_id(t[1]) else {
            return;
        };
        let reader = t[2];
        if reader != "jgf" && reader != "rv1exec" {
            self.err(&format!("ERROR: unsupported reader {reader}"));
            return;
        }
        let Ok(text) = std::fs::read_to_string(t[3]) else {
            self.err(&format!("ERROR: can't open {}", t[3]));
            return;
        };
        match self.matcher.info(job) {
            None => {
                self.err(&format!("ERROR: nonexistent job {job}"));
                return;
            }
            Some(i) if i.reserved => {
                self.err("ERROR: reservations not currently supported by partial cancel");
                return;
            }
            Some(_) => {}
        }
        let roots = match reader {
            "rv1exec" => rv1exec_nodes(self.matcher.graph(), &text),
            _ => jgf_nodes(self.matcher.graph(), &text),
        };
        let mut full = false;
        let ok = match roots {
            // Fluxion's bookkeeping: records above the released nodes go only
            // through the aggregates that counted the job.
            Ok(roots) => {
                match self
                    .matcher
                    .partial_cancel_by(job, &roots, RecordsAbove::ByAggregates)
                {
                    Ok(gone) => {
                        full = gone;
                        if gone && let Some(m) = self.jobs.get_mut(&job) {
                            m.state = "CANCELED";
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        if !ok {
            self.err(&format!(
                "ERROR: error encountered while removing job {job}"
            ));
        }
        let _ = full;
        if t.get(4) == Some(&"stats") {
            let _ = writeln!(self.out, "INFO: =============================");
            let _ = writeln!(self.out, "INFO: PARTIAL CANCEL PREORDER COUNT=\"0\"");
            let _ = writeln!(self.out, "INFO: PARTIAL CANCEL POSTORDER COUNT=\"0\"");
            let _ = writeln!(self.out, "INFO: =============================");
        }
    }

    fn cmd_find(&mut self, t: &[&str]) {
        if t.len() < 2 {
            self.err("ERROR: malformed command: ");
            return;
        }
        let criteria = t[1..].join(" ");
        let expr = match find::parse(&criteria) {
            Ok(e) => e,
            Err(e) => {
                self.err(&format!("ERROR: {e}"));
                return;
            }
        };
        let g = self.matcher.graph();
        let mut emitted = Vec::new();
        if let Some(root) = g.root() {
            collect_find(g, root, &expr, &mut emitted);
        }
        let agf = expr.wants_agfilter();
        let job = expr.job();
        let root = g.root();
        let mut leaf_types: Vec<_> = if agf && !emitted.is_empty() {
            g.vertices()
                .filter(|&u| g.children(u).is_empty())
                .filter_map(|u| g.vertex(u).map(|x| x.kind))
                .collect()
        } else {
            Vec::new()
        };
        leaf_types.sort();
        leaf_types.dedup();
        let extra = |v: VertexId| -> Option<String> {
            if !agf {
                return None;
            }
            // Fluxion lists the tracked types below a vertex (not its own
            // type), sorted by name; the root also counts every leaf type,
            // tracked or not.
            let own = g.vertex(v).map(|x| x.kind);
            let mut types: Vec<_> = g
                .tracked_types()
                .iter()
                .copied()
                .filter(|&t| Some(t) != own)
                .collect();
            let at_root = Some(v) == root;
            if at_root {
                types.extend(leaf_types.iter().copied());
            }
            types.sort_by(|a, b| g.type_name(*a).cmp(g.type_name(*b)));
            types.dedup();
            let parts: Vec<String> = types
                .into_iter()
                .filter_map(|ty| {
                    let total = match g.subtree_total(v, ty) {
                        Some(total) => {
                            g.free_units(v, ty, 0, 1)?;
                            total
                        }
                        None if at_root => g
                            .vertices()
                            .filter_map(|u| g.vertex(u).filter(|x| x.kind == ty))
                            .map(|x| x.size)
                            .sum(),
                        None => return None,
                    };
                    // With a job named, "used" is what that job holds.
                    // Fluxion counts the units claimed below (not what an
                    // exclusive claim above them hides), so sum the claims.
                    let used = claimed_units(g, v, ty, job);
                    Some(format!(
                        "\"{}\": \"used:{}, total:{}\"",
                        g.type_name(ty),
                        used,
                        total
                    ))
                })
                .collect();
            Some(format!("\"agfilter\": {{{}}}", parts.join(", ")))
        };
        // Nothing found prints nothing, whatever the writer.
        let text = if emitted.is_empty() {
            String::new()
        } else {
            render(g, &emitted, self.format, 0, 0, Some(&extra))
        };
        let _ = self.out.write_all(text.as_bytes());
        let _ = writeln!(self.out, "INFO: =============================");
        let _ = writeln!(self.out, "INFO: EXPRESSION=\"{criteria}\"");
        let _ = writeln!(self.out, "INFO: =============================");
    }

    fn cmd_info(&mut self, t: &[&str]) {
        if t.len() != 2 {
            self.err("ERROR: malformed command");
            return;
        }
        let Some(job) = self.job_id(t[1]) else {
            return;
        };
        match self.jobs.get(&job) {
            None => println!("ERROR: jobid doesn't exist: {}", t[1]),
            Some(m) => println!(
                "INFO: {job}, {}, {}, {}, {:.6}",
                m.state, m.at, m.jobspec, m.overhead
            ),
        }
    }

    fn cmd_list(&mut self) {
        for (job, m) in &self.jobs {
            println!(
                "INFO: {job}, {}, {}, {}, {:.6}",
                m.state, m.at, m.jobspec, m.overhead
            );
        }
    }

    fn cmd_stat(&mut self, t: &[&str]) {
        if t.len() != 1 {
            self.err("ERROR: malformed command");
            return;
        }
        print!("{}", self.stat_text());
    }

    /// What `stat` prints.
    fn stat_text(&self) -> String {
        let n = self.jobs.len();
        // Jobs recorded by `update` were not matched here: they have no
        // match time (and alone, no minimum to print).
        let (avg, min) = if self.perf_count > 0 {
            (self.perf_sum / self.perf_count as f64, self.perf_min)
        } else {
            (0.0, 0.0)
        };
        let s = self.matcher.stat();
        format!(
            "INFO: Num. of Jobs Matched: {n}\nINFO: Min. Match Time: {min}\nINFO: Max. Match Time: {}\nINFO: Avg. Match Time: {avg}\nINFO: Vertices: {} Edges: {} Allocated: {} Reserved: {}\n",
            self.perf_max, s.vertices, s.edges, s.allocated, s.reserved
        )
    }

    fn cmd_set_status(&mut self, t: &[&str]) {
        if t.len() != 3 {
            self.err("ERROR: malformed command");
            return;
        }
        let Some(v) = self.matcher.graph().find_path(t[1]) else {
            let _ = writeln!(self.out, "Could not find path {} in resource graph.", t[1]);
            return;
        };
        let status = match t[2] {
            "up" => Status::Up,
            "down" => Status::Down,
            _ => {
                self.err("ERROR: unrecognized status");
                return;
            }
        };
        if let Err(e) = self.matcher.graph_mut().set_status(v, status) {
            self.err(&format!("ERROR: {e}"));
        }
    }

    fn cmd_get_status(&mut self, t: &[&str]) {
        if t.len() != 2 {
            self.err("ERROR: malformed command");
            return;
        }
        match self
            .matcher
            .graph()
            .find_path(t[1])
            .and_then(|v| self.matcher.graph().vertex(v))
        {
            None => {
                let _ = writeln!(self.out, "Could not find path {} in resource graph.", t[1]);
            }
            Some(x) => {
                let s = if x.status == Status::Up { "up" } else { "down" };
                let _ = writeln!(self.out, "{} is {s}", t[1]);
            }
        }
    }

    fn cmd_set_property(&mut self, t: &[&str]) {
        if t.len() != 3 {
            self.err("ERROR: malformed command");
            return;
        }
        let Some((k, v)) = t[2]
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        else {
            let _ = writeln!(self.out, "Incorrect input format. ");
            let _ = writeln!(
                self.out,
                "Please use `set-property <resource> PROPERTY=VALUE`."
            );
            return;
        };
        match self.matcher.graph().find_path(t[1]) {
            None => {
                let _ = writeln!(self.out, "Couldn't find path {} in resource graph.", t[1]);
            }
            Some(vx) => {
                if let Err(e) = self.matcher.graph_mut().set_property(vx, k, v) {
                    self.err(&format!("ERROR: {e}"));
                }
            }
        }
    }

    fn cmd_get_property(&mut self, t: &[&str]) {
        if t.len() != 2 {
            self.err("ERROR: malformed command");
            return;
        }
        let g = self.matcher.graph();
        match g.find_path(t[1]).and_then(|v| g.vertex(v)) {
            None => {
                let _ = writeln!(self.out, "Could not find path {} in resource graph.", t[1]);
            }
            Some(x) if x.properties.is_empty() => {
                let _ = writeln!(
                    self.out,
                    "No properties were found for {} (vtx's uniq_id={}).",
                    t[1], x.uniq_id
                );
            }
            Some(x) => {
                let mut props: Vec<_> = x.properties.iter().collect();
                props.sort();
                for (k, v) in props {
                    let _ = writeln!(self.out, "{k}={v}");
                }
            }
        }
    }

    fn cmd_remove(&mut self, t: &[&str]) {
        if t.len() != 3 {
            self.err("ERROR: malformed command");
            return;
        }
        let targets: Vec<VertexId> = match t[2] {
            "true" => match self.matcher.graph().find_path(t[1]) {
                Some(v) => vec![v],
                None => {
                    self.err("ERROR: can't remove subgraph ");
                    self.err(&format!("ERROR: path {} not found", t[1]));
                    return;
                }
            },
            "false" => match parse_idset(t[1]) {
                Ok(ranks) => nodes_of_ranks(self.matcher.graph(), &ranks),
                Err(e) => {
                    self.err(&format!("ERROR: failed to decode ranks: {e}."));
                    return;
                }
            },
            _ => {
                self.err("ERROR: invalid path boolean input ");
                return;
            }
        };
        for v in targets {
            if let Err(e) = self.matcher.remove_subtree(v) {
                self.err("ERROR: can't remove subgraph ");
                self.err(&format!("ERROR: {e}"));
            }
        }
    }

    fn cmd_attach(&mut self, t: &[&str]) {
        if t.len() != 2 {
            self.err("ERROR: malformed command");
            return;
        }
        let Ok(text) = std::fs::read_to_string(t[1]) else {
            self.err(&format!("ERROR: can't open {}", t[1]));
            return;
        };
        if let Err(e) = attach_jgf(self.matcher.graph_mut(), &text) {
            self.err("ERROR: can't attach JGF subgraph ");
            if matches!(e, fluxion_core::io::IoError::DuplicateRoot(_)) {
                // resource-query's exact wording, which scripts compare.
                self.err("ERROR: add_subgraph: ERROR: add subgraph error: Invalid argument");
                self.err("add_subgraph: ERROR: reader returned error: add_graph_metadata: failed to add root metadata for containment subsystem. Possible duplicate root.\n\n");
            } else {
                self.err(&format!("ERROR: {e}"));
            }
        }
    }

    fn cmd_cat(&mut self, t: &[&str]) {
        if t.len() != 2 {
            self.err("ERROR: malformed command");
            return;
        }
        match std::fs::read_to_string(t[1]) {
            Ok(s) => {
                for l in s.lines() {
                    println!("{l}");
                }
                println!("INFO: Jobspec in {}", t[1]);
            }
            Err(_) => self.err(&format!("ERROR: can't open {}", t[1])),
        }
    }

    fn cmd_help(&mut self) {
        for (c, a, n) in [
            (
                "match",
                "m",
                "allocate | allocate_with_satisfiability | allocate_orelse_reserve | satisfiability JOBSPEC",
            ),
            ("multi-match", "M", "SUBCMD JOBSPEC1 JOBSPEC2 ..."),
            ("attach", "j", "JGF_FILE"),
            ("remove", "remove", "PATH true | RANKS false"),
            (
                "find",
                "f",
                "EXPRESSION (status=up|down sched-now=allocated|free jobid-alloc=ID ...)",
            ),
            ("cancel", "c", "JOBID [stats]"),
            ("partial-cancel", "pc", "JOBID jgf|rv1exec FILE [stats]"),
            ("set-property", "p", "PATH PROPERTY=VALUE"),
            ("get-property", "g", "PATH"),
            ("set-status", "t", "PATH up|down"),
            ("get-status", "e", "PATH"),
            ("list", "l", "list all jobs"),
            ("info", "i", "JOBID"),
            ("stat", "s", "print overall stats"),
            ("cat", "a", "JOBSPEC"),
            ("help", "h", "this message"),
            ("quit", "q", "quit the session"),
        ] {
            println!("INFO: {c} ({a}) -- {n}");
        }
    }
}

/// Prints a match's `-e` lines on stdout (the time, when given, then the
/// visit counts) in one write: stdout is line-buffered, and a write per
/// line is a system call per line.
fn print_stats(elapsed: Option<f64>, pre: u64, post: u64) {
    let time = elapsed.map_or(String::new(), |e| format!("INFO: ELAPSE={e:.9}\n"));
    let text =
        format!("{time}INFO: PREORDER VISIT COUNT={pre}\nINFO: POSTORDER VISIT COUNT={post}\n");
    print!("{text}");
}

/// C `strtoll`-like: leading digits, else 0.
fn parse_id(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        let shown: String = s.chars().take(40).collect();
        format!(
            "invalid job id '{shown}': expected a whole number from 0 to {}",
            u64::MAX
        )
    })
}

/// Longest command line the shell reads; a longer one is skipped whole.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads one line into `buf` (without its newline), keeping at most
/// [`MAX_LINE_BYTES`]: returns `None` at the end of input, else whether the
/// line was longer (its rest is read and dropped, never held).
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut overlong = false;
    let mut any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(overlong));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if buf.len() + part.len() > MAX_LINE_BYTES {
            overlong = true;
            buf.clear();
        } else if !overlong {
            buf.extend_from_slice(part);
        }
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(overlong));
        }
    }
}

/// Units of type `t` claimed now in the subtree of `v` (below `v`), by
/// `job` or by anyone.
fn claimed_units(
    g: &ResourceGraph,
    v: VertexId,
    t: fluxion_core::graph::TypeId,
    job: Option<u64>,
) -> u64 {
    let mut sum = 0;
    let mut stack: Vec<VertexId> = g.children(v).to_vec();
    while let Some(u) = stack.pop() {
        if let Some(x) = g.vertex(u) {
            if x.kind == t {
                sum += x
                    .spans()
                    .iter()
                    .filter(|s| s.overlaps(0, 1) && job.is_none_or(|j| s.job == j))
                    .map(|s| {
                        if s.amount > 0 {
                            s.amount
                        } else if s.exclusive {
                            x.size
                        } else {
                            0
                        }
                    })
                    .sum::<u64>();
            }
            stack.extend(g.children(u).iter().copied());
        }
    }
    sum
}

/// Post-order: a vertex is listed when it matches or has a matching descendant.
/// The vertices `expr` selects and their ancestors, in post-order (as
/// Fluxion's find emits them). Walked without recursion: a graph's depth
/// comes from its file.
fn collect_find(g: &ResourceGraph, root: VertexId, expr: &find::Expr, out: &mut Vec<Emit>) {
    let mut kept = vec![false; g.index_bound()];
    for v in g.subtree_post_order(root) {
        let any = g.children(v).iter().any(|c| kept[c.index()]);
        if any || expr.eval(g, v) {
            kept[v.index()] = true;
            let size = g.vertex(v).map_or(1, |x| x.size);
            out.push(Emit {
                vertex: v,
                needs: size,
                exclusive: true,
            });
        }
    }
}

#[cfg(test)]
mod tests;
