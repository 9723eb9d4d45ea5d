//! The shell on hostile input: every bad line is an error for that line,
//! naming what was wrong, and the session goes on.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use super::*;

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

fn data(file: &str) -> String {
    format!(
        "{}/../../fluxion-core/tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn args(graph: &str, format: &str) -> QueryArgs {
    QueryArgs {
        load_file: Some(graph.into()),
        load_format: format.into(),
        load_allowlist: None,
        match_subsystems: "CA".into(),
        match_policy: "first".into(),
        match_format: "simple".into(),
        prune_filters: "ALL:core".into(),
        graph_format: None,
        graph_output: None,
        test_output: None,
        reserve_vtx_vec: None,
        traverser: "simple".into(),
        elapse_time: false,
        max_vertices: fluxion_core::graph::DEFAULT_MAX_VERTICES,
        disable_prompt: true,
    }
}

/// Runs `input` in a session on mini.graphml; returns (output, errors).
fn run(input: &[u8]) -> (String, String) {
    let mut s = Session::open(&args(&data("mini.graphml"), "grug")).expect("session");
    let (out, errs) = (Shared::default(), Shared::default());
    s.out = Box::new(out.clone());
    s.errs = Box::new(errs.clone());
    s.serve(input).expect("the session ends normally");
    (out.text(), errs.text())
}

#[test]
fn unknown_commands_are_errors_and_the_session_goes_on() {
    let (out, errs) = run(b"frobnicate 1\nmatch allocate SOCKET\nquit\n");
    assert!(
        errs.contains("ERROR: unknown command 'frobnicate'"),
        "{errs}"
    );
    // `SOCKET` is not a file: an error, then quit.
    assert!(errs.contains("can't open SOCKET"), "{errs}");
    assert!(!out.contains("JOBID"), "{out}");
}

#[test]
fn job_ids_are_whole_numbers_or_an_error_naming_them() {
    let spec = data("socket2.yaml");
    let input = format!(
        "match allocate {spec}\ncancel 99999999999999999999999999\ncancel 1abc\ninfo -1\npartial-cancel x rv1exec {spec}\ncancel 1\nquit\n"
    );
    let (out, errs) = run(input.as_bytes());
    assert!(out.contains("JOBID=1"), "{out}");
    for arg in ["99999999999999999999999999", "1abc", "-1", "x"] {
        assert!(
            errs.contains(&format!(
                "ERROR: invalid job id '{arg}': expected a whole number from 0 to 18446744073709551615"
            )),
            "{arg}: {errs}"
        );
    }
    // Job 1 was left alone by `cancel 1abc`, and `cancel 1` then freed it.
    assert!(!errs.contains("nonexistent job"), "{errs}");
}

#[test]
fn a_bad_line_is_an_error_for_that_line_only() {
    let spec = data("socket2.yaml");
    let mut input = b"stat\n\xff\xfe garbage\n".to_vec();
    input.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + 10]);
    input.extend_from_slice(format!("\nmatch allocate {spec}\nquit\n").as_bytes());
    let (out, errs) = run(&input);
    assert!(
        errs.contains("ERROR: line 2: not UTF-8 text (invalid byte at offset 0); ignored"),
        "{errs}"
    );
    assert!(
        errs.contains("ERROR: line 3: longer than the limit of 1048576 bytes; ignored"),
        "{errs}"
    );
    assert!(out.contains("JOBID=1"), "the session went on: {out}");
}

#[test]
fn jobspec_files_that_are_not_text_say_so() {
    let dir = std::env::temp_dir().join(format!("phalanx-query-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bin = dir.join("bin.yaml");
    std::fs::write(&bin, b"version: 1\nresources: \xff\n").expect("write");
    let input = format!("match allocate {}\nquit\n", bin.display());
    let (_, errs) = run(input.as_bytes());
    assert!(
        errs.contains("not UTF-8 text (invalid byte at offset 22)"),
        "{errs}"
    );
    assert!(!errs.contains("can't open"), "{errs}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn remove_caps_the_ranks_it_expands() {
    let many = vec!["0-1000000"; 100].join(",");
    let (_, errs) = run(format!("remove {many} false\nquit\n").as_bytes());
    assert!(errs.contains("ERROR: failed to decode ranks: expands to 100000100 ids, more than the limit of 1000000 (MAX_IDSET_IDS)."), "{errs}");
}

#[test]
fn stat_prints_no_min_time_when_no_job_was_matched_here() {
    let dir = std::env::temp_dir().join(format!("phalanx-query-stat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    // A placement made elsewhere: one core, by JGF.
    let jr = dir.join("r.jgf");
    std::fs::write(
        &jr,
        r#"{"graph": {"nodes": [{"id": "1", "metadata": {"type": "core", "exclusive": true, "paths": {"containment": "/mini0/rack0/node0/socket0/core0"}}}], "edges": []}}"#,
    )
    .expect("write");
    let mut s = Session::open(&args(&data("mini.graphml"), "grug")).expect("session");
    let (out, errs) = (Shared::default(), Shared::default());
    s.out = Box::new(out.clone());
    s.errs = Box::new(errs.clone());
    let input = format!("update allocate jgf {} 7 0 100\nquit\n", jr.display());
    s.serve(input.as_bytes()).expect("serve");
    assert!(
        out.text().contains("JOBID=7"),
        "{} {}",
        out.text(),
        errs.text()
    );
    let stat = s.stat_text();
    assert!(stat.contains("INFO: Num. of Jobs Matched: 1\n"), "{stat}");
    assert!(stat.contains("INFO: Min. Match Time: 0\n"), "{stat}");
    assert!(stat.contains("INFO: Avg. Match Time: 0\n"), "{stat}");
    // A match here is timed, and is then the minimum.
    s.serve(format!("match allocate {}\nquit\n", data("socket2.yaml")).as_bytes())
        .expect("serve");
    let stat = s.stat_text();
    assert!(stat.contains("INFO: Num. of Jobs Matched: 2\n"), "{stat}");
    assert!(!stat.contains(&f64::MAX.to_string()), "{stat}");
    assert!(!stat.contains("Min. Match Time: 0\n"), "{stat}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn update_at_the_largest_job_id_does_not_overflow() {
    let (_, errs) = run(b"update allocate rv1exec /nonexistent 18446744073709551615 0 10\nupdate allocate rv1exec /x 1 -5 10\nupdate allocate rv1exec /x 1 0 0\nquit\n");
    assert!(errs.contains("can't open /nonexistent"), "{errs}");
    assert!(
        errs.contains("AT '-5': expected a whole number from 0"),
        "{errs}"
    );
    assert!(
        errs.contains("DURATION '0': expected a whole number from 1"),
        "{errs}"
    );
}

#[test]
fn find_honours_parentheses() {
    let spec = data("socket2.yaml");
    let found = |expr: &str| {
        let (out, errs) = run(format!("match allocate {spec}\nfind {expr}\nquit\n").as_bytes());
        assert!(errs.is_empty(), "{errs}");
        let after = "SCHEDULED AT=Now\nINFO: =============================\n";
        let (_, find) = out.split_once(after).expect("the match's answer");
        find.to_string()
    };
    // Nothing is down: the grouped expression finds nothing.
    let grouped = found("(sched-now=allocated or status=up) and status=down");
    assert!(grouped.starts_with("INFO: ===="), "{grouped}");
    // Without the parentheses, `and` binds tighter: the job's cores are found.
    let plain = found("sched-now=allocated or status=up and status=down");
    assert!(plain.contains("core") && plain.contains("[1:x]"), "{plain}");
}

#[test]
fn comment_lines_are_not_unknown_commands() {
    let (_, errs) = run(b"# a comment\n#another\nquit\n");
    assert!(errs.is_empty(), "{errs}");
}

/// A refused update reports its job as resource-query does (no match for
/// that id, which is used up), holds nothing, and an id already in use is
/// refused before anything is read.
#[test]
fn a_refused_update_reports_its_job_and_uses_up_the_id() {
    let dir = std::env::temp_dir().join(format!("phalanx-query-upd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let jr = dir.join("r.jgf");
    std::fs::write(
        &jr,
        r#"{"graph": {"nodes": [{"id": "1", "metadata": {"type": "core", "exclusive": true, "paths": {"containment": "/mini0/rack0/node0/socket0/core0"}}}], "edges": []}}"#,
    )
    .expect("write");
    let r = jr.display();
    let spec = data("socket2.yaml");
    let (out, errs) = run(format!(
        "update allocate jgf {r} 7 0 100\nupdate allocate jgf {r} 8 0 100\nupdate allocate jgf {r} 7 0 100\nmatch allocate {spec}\nquit\n"
    )
    .as_bytes());
    assert!(
        out.contains("INFO: No matching resources found\nINFO: JOBID=8\n"),
        "{out}"
    );
    assert!(errs.contains("ERROR: update: job 8"), "{errs}");
    assert!(errs.contains("ERROR: existing Jobid"), "{errs}");
    assert!(
        out.contains("INFO: JOBID=9\nINFO: RESOURCES=ALLOCATED"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn match_subsystems_follow_resource_query_names_in_either_case() {
    assert_eq!(subsystems_of("PA").unwrap(), ["power"]);
    assert_eq!(subsystems_of("c+pa").unwrap(), ["containment", "power"]);
    let e = subsystems_of("XYZ").unwrap_err().to_string();
    assert!(
        e.contains("-S/--match-subsystems") && e.contains("XYZ"),
        "{e}"
    );
}

#[test]
fn walking_a_subsystem_the_graph_lacks_is_refused_naming_it() {
    let mut a = args(&data("mini.graphml"), "grug");
    a.match_subsystems = "PA".into();
    let e = Session::open(&a)
        .err()
        .expect("no power subsystem")
        .to_string();
    assert!(
        e.contains("-S/--match-subsystems PA") && e.contains("'power'"),
        "{e}"
    );
    // An auxiliary subsystem only needs the dominant one to be there.
    a.match_subsystems = "C+PA".into();
    assert!(Session::open(&a).is_ok());
}

/// resource-query checks a resource's type before anything else about the
/// jobspec: one it does not know is the error even when the jobspec is also
/// wrong in other ways (here it has no slot); a known type with the same
/// fault reports that fault.
#[test]
fn an_unknown_resource_type_is_the_error_reported_first() {
    let dir = std::env::temp_dir().join(format!("phalanx-unknown-type-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = |t: &str| {
        format!(
            "version: 9999\nresources:\n  - type: node\n    count: 1\n    with:\n      - type: {t}\n        count: 2\ntasks:\n  - command: [app]\n    slot: default\n    count:\n      per_slot: 1\n"
        )
    };
    let odd = dir.join("odd.yaml");
    let plain = dir.join("plain.yaml");
    std::fs::write(&odd, spec("widget")).unwrap();
    std::fs::write(&plain, spec("core")).unwrap();
    let input = format!(
        "match allocate {}\nmatch allocate {}\nquit\n",
        odd.display(),
        plain.display()
    );
    let (_, errs) = run(input.as_bytes());
    let lines: Vec<&str> = errs.lines().collect();
    assert_eq!(lines.len(), 2, "{errs}");
    assert!(
        lines[0].ends_with("must be a resource type known to fluxion"),
        "{errs}"
    );
    assert!(lines[1].contains("no slot"), "{errs}");
    std::fs::remove_dir_all(&dir).unwrap();
}
