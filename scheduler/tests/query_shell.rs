//! Runs `phalanx query` as a process on the project's own fixtures and checks
//! the exact text it writes, like resource-query's own tests do.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn data(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "fluxion-core",
        "tests",
        "data",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

/// Runs the shell with `args`, feeding `commands`; returns (-t file, stderr).
fn run(args: &[&str], commands: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("phalanx-query-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join(format!("{}.out", args.join("_").replace('/', "_")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .arg("query")
        .args(args)
        .arg("-t")
        .arg(&out)
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start phalanx");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(commands.as_bytes())
        .expect("write commands");
    let res = child.wait_with_output().expect("phalanx runs");
    assert!(res.status.success(), "exit status {:?}", res.status);
    let text = std::fs::read_to_string(&out).expect("-t output written");
    (text, String::from_utf8_lossy(&res.stderr).into_owned())
}

#[test]
fn low_policy_allocates_and_cancels_with_exact_text() {
    let graph = data("mini.graphml");
    let spec = data("socket2.yaml");
    let cmds = format!(
        "match allocate {spec}\nmatch allocate {spec}\ncancel 1\nmatch allocate {spec}\ncancel 9\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-S", "CA", "-P", "low"], &cmds);
    let block = |cores: [u32; 2], socket: u32, job: u32| {
        format!(
            "      ---------------core{}[1:x]\n      ---------------core{}[1:x]\n      ------------socket{socket}[1:x]\n      ---------node0[1:s]\n      ------rack0[1:s]\n      ---mini0[1:s]\nINFO: =============================\nINFO: JOBID={job}\nINFO: RESOURCES=ALLOCATED\nINFO: SCHEDULED AT=Now\nINFO: =============================\n",
            cores[0], cores[1]
        )
    };
    // Job 1 takes socket0 of node0; job 2 the other socket; after job 1 is
    // cancelled, job 3 gets socket0 back.
    let expected = [
        block([0, 1], 0, 1),
        block([4, 5], 1, 2),
        block([0, 1], 0, 3),
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(err, "cancel: ERROR: nonexistent job 9\n");
}

#[test]
fn bad_input_prints_one_error_line_and_the_shell_goes_on() {
    let graph = data("mini.graphml");
    let bad = data("bad_count.yaml");
    let big = data("too_big.yaml");
    let spec = data("socket2.yaml");
    let cmds = format!(
        "match allocate /nonexistent/x.yaml\nmatch allocate {bad}\nmatch bogus {spec}\nfrobnicate\nmatch allocate_with_satisfiability {big}\nmatch allocate {spec}\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-P", "high"], &cmds);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "stderr: {err}");
    assert_eq!(lines[0], "ERROR: can't open /nonexistent/x.yaml");
    assert_eq!(
        lines[1],
        "match_allocate: ERROR: Jobspec error for 1: resources[0].with[0].with[0].count: must be a whole number from 1 to 9223372036854775807, got 0"
    );
    assert_eq!(lines[2], "ERROR: unknown subcmd bogus");
    assert_eq!(
        lines[3],
        "ERROR: unknown command 'frobnicate' (`help` lists the commands)"
    );
    // Only valid jobspecs take a job id. Job 1 (nine nodes on a four-node
    // graph) can never fit.
    assert!(
        out.contains(
            "INFO: No matching resources found\nINFO: Unsatisfiable request\nINFO: JOBID=1\n"
        ),
        "{out}"
    );
    // The shell kept going: job 2 was placed on the highest node.
    assert!(out.contains("      ---------node3[1:s]\n"), "{out}");
    assert!(out.ends_with("INFO: JOBID=2\nINFO: RESOURCES=ALLOCATED\nINFO: SCHEDULED AT=Now\nINFO: =============================\n"), "{out}");
}

#[test]
fn jgf_round_trip_keeps_names_and_paths() {
    let graph = data("mini.graphml");
    let spec = data("socket2.yaml");
    let (out, _) = run(
        &["-L", &graph, "-P", "low", "-F", "jgf"],
        &format!("match allocate {spec}\nquit\n"),
    );
    let json = out.lines().next().expect("one JGF line");
    assert!(
        json.starts_with("{\"graph\": {\"nodes\": [") && json.ends_with("]}}"),
        "{json}"
    );
    let key = "\"containment\": \"";
    let paths: Vec<&str> = json
        .split(key)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        paths,
        [
            "/mini0/rack0/node0/socket0/core0",
            "/mini0/rack0/node0/socket0/core1",
            "/mini0/rack0/node0/socket0",
            "/mini0/rack0/node0",
            "/mini0/rack0",
            "/mini0"
        ]
    );
    assert_eq!(json.matches("\"source\": ").count(), 5);
}

/// resource-query marks a request that can never fit "Unsatisfiable", except
/// that `allocate_orelse_reserve` reports a top-level count beyond the whole
/// graph (nine nodes on four) only as "No matching resources found".
#[test]
fn orelse_reserve_reports_unsatisfiable_as_resource_query_does() {
    let graph = data("mini.graphml");
    let outnumbered = data("too_big.yaml");
    let inner = data("inner_too_big.yaml");
    let cmds = format!(
        "match allocate_orelse_reserve {outnumbered}\nmatch allocate_with_satisfiability {outnumbered}\nmatch allocate_orelse_reserve {inner}\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-P", "first"], &cmds);
    assert_eq!(err, "");
    let failure = |job: u32, unsat: bool| {
        format!(
            "INFO: =============================\nINFO: No matching resources found\n{}INFO: JOBID={job}\nINFO: =============================\n",
            if unsat {
                "INFO: Unsatisfiable request\n"
            } else {
                ""
            }
        )
    };
    assert_eq!(
        out,
        [failure(1, false), failure(2, true), failure(3, true)].concat()
    );
}

/// `cancel ID stats` prints the visit counts of resource-query's cancel walk
/// (every vertex the job's match went through, plus each of their children
/// it did not), and `jobid-span` keeps to vertices whose aggregates count
/// the job's cores while `jobid-tag` lists every vertex the match went
/// through.
#[test]
fn cancel_stats_and_job_finds_follow_the_jobs_vertices() {
    let graph = data("mini.graphml");
    let spec = data("socket2.yaml");
    let cmds = format!(
        "match allocate {spec}\nfind jobid-span=1\nfind jobid-tag=1\ncancel 1 stats\nfind jobid-tag=1\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-P", "low"], &cmds);
    assert_eq!(err, "");
    let found = |expr: &str| {
        format!(
            "INFO: =============================\nINFO: EXPRESSION=\"{expr}\"\nINFO: =============================\n"
        )
    };
    let held_above = "      ------------socket0[1:x]\n      ---------node0[1:x]\n      ------rack0[1:x]\n      ---mini0[1:x]\n";
    let cores = "      ---------------core0[1:x]\n      ---------------core1[1:x]\n";
    // Tagged: core0, core1, socket0, node0, rack0, mini0 (6). Their other
    // children: core2, core3, gpu0, memory0, memory1, socket1, node1, rack1.
    let stats = "INFO: =============================\nINFO: CANCEL PREORDER COUNT=\"14\"\nINFO: CANCEL POSTORDER COUNT=\"6\"\nINFO: =============================\n";
    let expected = [
        held_above,
        &found("jobid-span=1"),
        cores,
        held_above,
        &found("jobid-tag=1"),
        stats,
        &found("jobid-tag=1"),
    ]
    .concat();
    assert!(out.ends_with(&expected), "{out}");
}

/// A partial cancel whose JGF describes a vertex differently from the graph
/// (here node0 with rank 5) is refused and the job keeps everything; the
/// same R with the graph's rank releases node0, which was all the job held.
#[test]
fn partial_cancel_refuses_an_r_that_disagrees_with_the_graph() {
    let graph = data("mini.graphml");
    let spec = data("socket2.yaml");
    let dir = std::env::temp_dir().join(format!("phalanx-partial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let r = |rank: i64| {
        let path = dir.join(format!("node0-rank{rank}.json"));
        let jgf = format!(
            r#"{{"graph": {{"nodes": [{{"id": "3", "metadata": {{"type": "node", "name": "node0", "id": 0, "rank": {rank}, "paths": {{"containment": "/mini0/rack0/node0"}}}}}}], "edges": []}}}}"#
        );
        std::fs::write(&path, jgf).expect("write R");
        path.to_string_lossy().into_owned()
    };
    let (stale, good) = (r(5), r(-1));
    let cmds = format!(
        "match allocate {spec}\npartial-cancel 1 jgf {stale}\nfind jobid-tag=1\npartial-cancel 1 jgf {good}\nfind jobid-tag=1\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-P", "low"], &cmds);
    assert_eq!(err, "ERROR: error encountered while removing job 1\n");
    let tagged = |lines: &str| {
        format!(
            "{lines}INFO: =============================\nINFO: EXPRESSION=\"jobid-tag=1\"\nINFO: =============================\n"
        )
    };
    let whole = "      ---------------core0[1:x]\n      ---------------core1[1:x]\n      ------------socket0[1:x]\n      ---------node0[1:x]\n      ------rack0[1:x]\n      ---mini0[1:x]\n";
    assert!(
        out.ends_with(&[tagged(whole), tagged("")].concat()),
        "{out}"
    );
}

/// `update allocate rv1exec R JOBID AT DURATION` records a placement made
/// elsewhere: the R's cores are held by that job id and printed like a
/// match; the same cores cannot be taken twice, and an R naming a core the
/// rank does not have gets an error naming the field.
#[test]
fn update_records_a_placement_from_an_r() {
    let dir = std::env::temp_dir().join(format!("phalanx-update-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, ranks: &str, cores: &str| {
        let path = dir.join(name);
        let r = format!(
            r#"{{"version": 1, "execution": {{"R_lite": [{{"rank": "{ranks}", "children": {{"core": "{cores}"}}}}], "nodelist": ["n[0-1]"], "starttime": 0, "expiration": 1000}}}}"#
        );
        std::fs::write(&path, r).expect("write R");
        path.to_string_lossy().into_owned()
    };
    let graph = write("graph.json", "0-1", "0-3");
    let r = write("r.json", "1", "2-3");
    let bad = write("bad.json", "1", "3-4");
    let cmds = format!(
        "update allocate rv1exec {r} 5 0 600\nupdate allocate rv1exec {r} 6 0 600\nupdate allocate rv1exec {bad} 7 0 600\ninfo 5\nquit\n"
    );
    let (out, err) = run(&["-L", &graph, "-f", "rv1exec", "-P", "low"], &cmds);
    assert_eq!(
        err,
        "ERROR: update: job 6: no matching resources found (busy)\nERROR: update: job 7: execution.R_lite[0].children.core: rank 1 has no core with id 4\n"
    );
    let placed = "      ---------core2[1:x]\n      ---------core3[1:x]\n      ------n1[1:x]\n      ---cluster0[1:s]\nINFO: =============================\nINFO: JOBID=5\nINFO: RESOURCES=ALLOCATED\nINFO: SCHEDULED AT=Now\nINFO: =============================\n";
    assert!(out.starts_with(placed), "{out}");
    assert!(
        out.contains("INFO: JOBID=5\nINFO: RESOURCES=ALLOCATED"),
        "{out}"
    );
}

/// `find agfilter=t` prints each vertex's aggregate counts; below the root
/// only the prune-filter types (cores by default), at the root every leaf
/// type too, as resource-query does.
#[test]
fn the_root_reports_every_leaf_type_in_its_aggregate() {
    let graph = data("mini.graphml");
    let spec = data("socket2.yaml");
    let cmds = format!("match allocate {spec}\nfind agfilter=t\nquit\n");
    let (out, err) = run(&["-L", &graph, "-P", "low", "-F", "jgf"], &cmds);
    assert_eq!(err, "");
    let found = out.lines().nth(6).expect("the find's JGF line");
    assert!(
        found.contains(r#""containment": "/mini0"}, "agfilter": {"core": "used:2, total:32", "gpu": "used:0, total:8", "memory": "used:0, total:128"}"#),
        "{found}"
    );
    assert!(
        found.contains(
            r#""containment": "/mini0/rack0/node0"}, "agfilter": {"core": "used:2, total:8"}"#
        ),
        "{found}"
    );
}
