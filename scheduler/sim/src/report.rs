//! What a run measured, and how it is shown: a table, JSON, an SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

/// One point of the time series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Virtual time, s.
    pub t: f64,
    /// CPU of running jobs / all CPU.
    pub cpu_util: f64,
    /// GPUs of running jobs / all GPUs (0 without GPUs).
    pub gpu_util: f64,
    /// Jobs completed so far.
    pub completed: u64,
}

impl Sample {
    /// A sample at `now` (ms).
    pub fn new(now: i64, cpu: i64, gpu: i64, cap_cpu: i64, cap_gpu: i64, completed: u64) -> Self {
        Sample {
            t: now as f64 / 1000.0,
            cpu_util: ratio(cpu, cap_cpu),
            gpu_util: ratio(gpu, cap_gpu),
            completed,
        }
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b > 0 { a as f64 / b as f64 } else { 0.0 }
}

/// The outcome of one scheduler on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Scheduler.
    pub scheduler: String,
    /// Jobs in the workload.
    pub jobs: usize,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs that never got any pod placed.
    pub never_started: u64,
    /// First arrival, ms.
    pub first_arrival: i64,
    /// Last completion, ms.
    pub makespan_end: i64,
    /// When the run stopped, ms.
    pub end: i64,
    /// Makespan in seconds when every job completed.
    pub makespan_secs: Option<f64>,
    /// Wait of started jobs per priority, highest priority first.
    pub wait_by_priority: Vec<PriorityWait>,
    /// Gang runs that lost pods below their minimum to preemption (whole
    /// or partial; a job counts again only after it ran again).
    pub preempted_gangs: u64,
    /// Of those, the ones the scheduler left with some of their pods: half
    /// an MPI job, which then fails whole.
    pub partially_preempted_gangs: u64,
    /// Pods evicted by the scheduler.
    pub evicted_pods: u64,
    /// Evicted pods that were elastic members above their job's minimum.
    pub released_members: u64,
    /// Times a job failed (it lost pods below its minimum) and started over.
    pub restarts: u64,
    /// Work lost to those failures: run time before the failure times the
    /// job's minimum pods, pod-seconds.
    pub lost_pod_secs: f64,
    /// Elastic members bound after their job started.
    pub extra_members_bound: u64,
    /// Mean wait of the largest quarter of started gangs (by pods), s.
    pub big_quarter_wait_secs: Option<f64>,
    /// Mean wait of the smallest quarter of started gangs (by pods), s.
    pub small_quarter_wait_secs: Option<f64>,
    /// Jain's fairness index over the slowdowns of started gangs:
    /// (sum x)^2 / (n * sum x^2), 1 when every gang is slowed alike, 1/n
    /// when one gang takes all the slowdown.
    pub fairness_jain: Option<f64>,
    /// Mean wait of the largest quarter of started gangs (by pods) over that
    /// of the smallest quarter; `None` when the small ones did not wait.
    pub big_small_wait_ratio: Option<f64>,
    /// Mean wait, s.
    pub mean_wait_secs: f64,
    /// 99th percentile wait, s.
    pub p99_wait_secs: f64,
    /// CPU-time of running jobs over CPU-time available, first arrival to end.
    pub cpu_utilisation: f64,
    /// Same for GPUs.
    pub gpu_utilisation: f64,
    /// Jobs with some but not all pods holding resources when the run stopped.
    pub partial_gangs: u64,
    /// Pods holding resources in jobs that never started.
    pub stranded_pods: u64,
    /// Whether the run stopped with work left and nothing able to run.
    pub stuck: bool,
    /// Deadlocked since (ms): partial gangs hold the cluster and nothing runs.
    pub deadlock_since: Option<i64>,
    /// Pods bound.
    pub placements: u64,
    /// Pods the kubelet rejected (NUMA admission).
    pub admission_failures: u64,
    /// Wall time of the run, s.
    pub wall_secs: f64,
    /// Placements per second of wall time.
    pub placements_per_sec: f64,
    /// Utilisation and completions over time.
    pub samples: Vec<Sample>,
    /// Every job of the workload: its shape and what became of it, so a
    /// summary number can be traced to the jobs behind it.
    pub job_records: Vec<JobRecord>,
}

/// One job of a run: its shape, when it came and how long it waited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// Its name in the workload.
    pub name: String,
    /// Pods it asks for.
    pub pods: u32,
    /// Pods it needs bound to run.
    pub min_pods: u32,
    /// CPU of each pod, millicores.
    pub cpu_millis: u64,
    /// GPUs of each pod.
    pub gpus: u64,
    /// Its priority.
    pub priority: i32,
    /// Arrival, s from the start of the run.
    pub arrival_secs: f64,
    /// Run time, s.
    pub duration_secs: f64,
    /// Run time it declared (`phalanx.dev/duration-seconds`), s.
    pub estimate_secs: f64,
    /// Its last start minus its arrival, s (a job that was preempted and
    /// started over waited for all of it); `None` when it never started.
    pub wait_secs: Option<f64>,
    /// Times it failed (it lost pods below its minimum) and started over.
    pub restarts: u32,
    /// Whether it ran to the end.
    pub completed: bool,
}

impl Run {
    /// An empty run.
    pub fn new(scheduler: &str, jobs: usize) -> Self {
        Run {
            scheduler: scheduler.to_owned(),
            jobs,
            completed: 0,
            never_started: 0,
            first_arrival: 0,
            makespan_end: 0,
            end: 0,
            makespan_secs: None,
            wait_by_priority: Vec::new(),
            preempted_gangs: 0,
            partially_preempted_gangs: 0,
            evicted_pods: 0,
            released_members: 0,
            restarts: 0,
            lost_pod_secs: 0.0,
            extra_members_bound: 0,
            big_quarter_wait_secs: None,
            small_quarter_wait_secs: None,
            fairness_jain: None,
            big_small_wait_ratio: None,
            mean_wait_secs: 0.0,
            p99_wait_secs: 0.0,
            cpu_utilisation: 0.0,
            gpu_utilisation: 0.0,
            partial_gangs: 0,
            stranded_pods: 0,
            stuck: false,
            deadlock_since: None,
            placements: 0,
            admission_failures: 0,
            wall_secs: 0.0,
            placements_per_sec: 0.0,
            samples: Vec::new(),
            job_records: Vec::new(),
        }
    }

    /// The waits of the jobs that started, s (a job that was preempted and
    /// started over waited for all of it), with their pod counts.
    pub fn sized_waits(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        self.job_records
            .iter()
            .filter_map(|j| Some((j.pods, j.wait_secs?)))
    }

    /// Derives the summary numbers.
    pub fn finish(&mut self, _cap_cpu: i64, _cap_gpu: i64) {
        if self.completed as usize == self.jobs {
            self.makespan_secs = Some((self.makespan_end - self.first_arrival) as f64 / 1000.0);
        }
        let started: Vec<&JobRecord> = self
            .job_records
            .iter()
            .filter(|j| j.wait_secs.is_some())
            .collect();
        let wait = |j: &JobRecord| j.wait_secs.unwrap_or(0.0);
        let waits: Vec<f64> = started.iter().map(|j| wait(j)).collect();
        let sized: Vec<(u32, f64)> = started.iter().map(|j| (j.pods, wait(j))).collect();
        let slowdowns: Vec<f64> = started
            .iter()
            .map(|j| {
                let runtime = j.duration_secs.max(0.001);
                (wait(j) + runtime) / runtime
            })
            .collect();
        if let Some((mean, p99)) = mean_p99(&waits) {
            self.mean_wait_secs = mean;
            self.p99_wait_secs = p99;
        }
        let mut by: std::collections::BTreeMap<std::cmp::Reverse<i32>, Vec<f64>> =
            Default::default();
        for j in &started {
            by.entry(std::cmp::Reverse(j.priority))
                .or_default()
                .push(wait(j));
        }
        self.wait_by_priority = by
            .into_iter()
            .filter_map(|(p, w)| {
                let (mean, p99) = mean_p99(&w)?;
                Some(PriorityWait {
                    priority: p.0,
                    jobs: w.len(),
                    mean_wait_secs: mean,
                    p99_wait_secs: p99,
                })
            })
            .collect();
        self.big_small_wait_ratio = big_small_ratio(&sized);
        if let Some((small, big)) = quartile_means(&sized) {
            self.small_quarter_wait_secs = Some(small);
            self.big_quarter_wait_secs = Some(big);
        }
        self.fairness_jain = jain(&slowdowns);
        // Integrate the step function of utilisation over [first arrival, end].
        let start = self.first_arrival as f64 / 1000.0;
        let end = self.end.max(self.makespan_end) as f64 / 1000.0;
        let span = end - start;
        if span > 0.0 {
            let (mut cpu, mut gpu) = (0.0, 0.0);
            for w in self.samples.windows(2) {
                let dt = w[1].t - w[0].t;
                cpu += w[0].cpu_util * dt;
                gpu += w[0].gpu_util * dt;
            }
            self.cpu_utilisation = cpu / span;
            self.gpu_utilisation = gpu / span;
        }
        if self.wall_secs > 0.0 {
            self.placements_per_sec = self.placements as f64 / self.wall_secs;
        }
    }
}

/// Wait of the started jobs of one priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityWait {
    /// The priority.
    pub priority: i32,
    /// Started jobs of this priority.
    pub jobs: usize,
    /// Their mean wait, s.
    pub mean_wait_secs: f64,
    /// Their 99th percentile wait, s.
    pub p99_wait_secs: f64,
}

/// Mean and 99th percentile (nearest rank) of `xs`; `None` when empty.
fn mean_p99(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let mut w = xs.to_vec();
    w.sort_by(f64::total_cmp);
    let idx = ((w.len() as f64 * 0.99).ceil() as usize).clamp(1, w.len()) - 1;
    Some((mean, w[idx]))
}

/// Jain's fairness index of `xs`; `None` when empty or all zero.
fn jain(xs: &[f64]) -> Option<f64> {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    (!xs.is_empty() && sq > 0.0).then(|| sum * sum / (xs.len() as f64 * sq))
}

/// Mean wait of gangs at or above the upper quartile of sizes over that of
/// gangs at or below the lower quartile.
fn big_small_ratio(sized: &[(u32, f64)]) -> Option<f64> {
    let (small, big) = quartile_means(sized)?;
    (small >= 1.0).then(|| big / small)
}

/// Mean waits of gangs at or below the lower quartile of sizes and of gangs
/// at or above the upper quartile; `None` with fewer than 4 gangs or one size.
fn quartile_means(sized: &[(u32, f64)]) -> Option<(f64, f64)> {
    if sized.len() < 4 {
        return None;
    }
    let mut sizes: Vec<u32> = sized.iter().map(|(n, _)| *n).collect();
    sizes.sort_unstable();
    let (lo, hi) = (sizes[sizes.len() / 4], sizes[sizes.len() * 3 / 4]);
    if lo >= hi {
        return None;
    }
    let mean = |keep: &dyn Fn(u32) -> bool| {
        let w: Vec<f64> = sized
            .iter()
            .filter(|(n, _)| keep(*n))
            .map(|(_, w)| *w)
            .collect();
        w.iter().sum::<f64>() / w.len().max(1) as f64
    };
    Some((mean(&|n| n <= lo), mean(&|n| n >= hi)))
}

fn secs(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1}h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1}m", s / 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// The report table.
pub fn table(scenario: &str, seed: u64, runs: &[Run], gpus: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario {scenario}, seed {seed}");
    let util = if gpus { "gpu util" } else { "cpu util" };
    let header = [
        "scheduler",
        "completed",
        "makespan",
        "mean wait",
        "p99 wait",
        "big/small wait",
        "big / small q. wait",
        "fairness",
        util,
        "partial gangs",
        "stranded pods",
        "deadlock",
        "placements/s",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in runs {
        rows.push(vec![
            r.scheduler.clone(),
            format!(
                "{}/{} ({:.0}%)",
                r.completed,
                r.jobs,
                100.0 * r.completed as f64 / r.jobs.max(1) as f64
            ),
            r.makespan_secs.map_or("-".to_owned(), secs),
            secs(r.mean_wait_secs),
            secs(r.p99_wait_secs),
            r.big_small_wait_ratio
                .map_or("-".to_owned(), |x| format!("{x:.1}x")),
            match (r.big_quarter_wait_secs, r.small_quarter_wait_secs) {
                (Some(b), Some(s)) => format!("{} / {}", secs(b), secs(s)),
                _ => "-".to_owned(),
            },
            r.fairness_jain
                .map_or("-".to_owned(), |j| format!("{j:.2}")),
            format!(
                "{:.1}%",
                100.0
                    * if gpus {
                        r.gpu_utilisation
                    } else {
                        r.cpu_utilisation
                    }
            ),
            r.partial_gangs.to_string(),
            r.stranded_pods.to_string(),
            match r.deadlock_since {
                Some(t) => format!("yes, since t={}", secs(t as f64 / 1000.0)),
                None if r.stuck => "stuck (no partial gangs)".to_owned(),
                None => "no".to_owned(),
            },
            format!("{:.0}", r.placements_per_sec),
        ]);
    }
    render(&mut out, &rows);
    versus(&mut out, runs, "phalanx", "native-gang");
    for r in runs.iter().filter(|r| r.admission_failures > 0) {
        let _ = writeln!(
            out,
            "note: {}: {} pods rejected by the kubelet (no single NUMA zone fits)",
            r.scheduler, r.admission_failures
        );
    }
    priority_table(&mut out, runs);
    out
}

/// `ours` against `theirs` when both ran: makespan and waits as a change
/// in percent (negative is better), and both big/small wait ratios.
fn versus(out: &mut String, runs: &[Run], ours: &str, theirs: &str) {
    let find = |name: &str| runs.iter().find(|r| r.scheduler == name);
    let (Some(a), Some(b)) = (find(ours), find(theirs)) else {
        return;
    };
    let change = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:+.1}%", (x / y - 1.0) * 100.0)
        } else {
            "-".to_owned()
        }
    };
    let makespan = match (a.makespan_secs, b.makespan_secs) {
        (Some(x), Some(y)) => change(x, y),
        _ => "-".to_owned(),
    };
    let ratio = |r: &Run| {
        r.big_small_wait_ratio
            .map_or("-".to_owned(), |x| format!("{x:.2}x"))
    };
    let _ = writeln!(
        out,
        "{ours} against {theirs}: makespan {makespan}, mean wait {}, p99 wait {}, big/small wait {} against {}",
        change(a.mean_wait_secs, b.mean_wait_secs),
        change(a.p99_wait_secs, b.p99_wait_secs),
        ratio(a),
        ratio(b),
    );
}

/// With more than one priority: the highest and lowest priority's waits
/// and the preemption counts of every scheduler, side by side.
fn priority_table(out: &mut String, runs: &[Run]) {
    let prios: std::collections::BTreeSet<i32> = runs
        .iter()
        .flat_map(|r| r.wait_by_priority.iter().map(|p| p.priority))
        .collect();
    let (Some(&low), Some(&high)) = (prios.first(), prios.last()) else {
        return;
    };
    if low == high {
        return;
    }
    let _ = writeln!(out);
    let wait = |r: &Run, p: i32| {
        r.wait_by_priority
            .iter()
            .find(|w| w.priority == p)
            .map_or("-".to_owned(), |w| {
                format!(
                    "{} / {} ({} jobs)",
                    secs(w.mean_wait_secs),
                    secs(w.p99_wait_secs),
                    w.jobs
                )
            })
    };
    let high_head = format!("priority {high} wait (mean / p99)");
    let low_head = format!("priority {low} wait (mean / p99)");
    let mut rows: Vec<Vec<String>> = vec![
        [
            "scheduler",
            high_head.as_str(),
            low_head.as_str(),
            "preempted gangs",
            "partially preempted",
            "evicted pods",
            "restarts",
            "lost work",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for r in runs {
        rows.push(vec![
            r.scheduler.clone(),
            wait(r, high),
            wait(r, low),
            r.preempted_gangs.to_string(),
            r.partially_preempted_gangs.to_string(),
            r.evicted_pods.to_string(),
            r.restarts.to_string(),
            format!("{} pod-h", format_args!("{:.1}", r.lost_pod_secs / 3600.0)),
        ]);
    }
    render(out, &rows);
}

/// Columns padded to their widest cell, a rule under the header.
fn render(out: &mut String, rows: &[Vec<String>]) {
    let Some(header) = rows.first() else {
        return;
    };
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:<w$}", w = widths[c]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// Seed.
    pub seed: u64,
    /// One run per scheduler.
    pub runs: &'a [Run],
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// An SVG chart: utilisation over time (top) and completed jobs (bottom), per scheduler.
pub fn svg(scenario: &str, runs: &[Run], gpus: bool) -> String {
    let (w, h, pad) = (900.0, 560.0, 50.0);
    let panel = (h - 3.0 * pad) / 2.0;
    let t_max = runs
        .iter()
        .flat_map(|r| r.samples.last().map(|s| s.t))
        .fold(1.0_f64, f64::max);
    let jobs = runs.iter().map(|r| r.jobs).max().unwrap_or(1).max(1) as f64;
    let x = |t: f64| pad + (w - 2.0 * pad) * t / t_max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{pad}" y="20" font-size="14">{} — {} utilisation and completed jobs over time</text>"#,
        escape(scenario),
        if gpus { "GPU" } else { "CPU" }
    );
    for (p, label) in [(0.0, "utilisation"), (1.0, "completed jobs")] {
        let top = pad + p * (panel + pad);
        let _ = writeln!(
            s,
            r#"<rect x="{pad}" y="{top}" width="{}" height="{panel}" fill="none" stroke="grey"/>"#,
            w - 2.0 * pad
        );
        let _ = writeln!(s, r#"<text x="{pad}" y="{}">{label}</text>"#, top - 4.0);
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        w - pad,
        h - 10.0,
        format_args!("virtual time (max {})", secs(t_max))
    );
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut util = String::new();
        let mut done = String::new();
        let mut prev: Option<Sample> = None;
        for sample in &r.samples {
            let u = if gpus {
                sample.gpu_util
            } else {
                sample.cpu_util
            };
            let yu = pad + panel * (1.0 - u);
            let yc = 2.0 * pad + panel + panel * (1.0 - sample.completed as f64 / jobs);
            if let Some(p) = prev {
                let pu = if gpus { p.gpu_util } else { p.cpu_util };
                let _ = write!(util, "L{:.1},{:.1} ", x(sample.t), pad + panel * (1.0 - pu));
                let _ = write!(
                    done,
                    "L{:.1},{:.1} ",
                    x(sample.t),
                    2.0 * pad + panel + panel * (1.0 - p.completed as f64 / jobs)
                );
            } else {
                let _ = write!(util, "M{:.1},{:.1} ", x(sample.t), pad + panel);
                let _ = write!(done, "M{:.1},{:.1} ", x(sample.t), 2.0 * pad + 2.0 * panel);
            }
            let _ = write!(util, "L{:.1},{yu:.1} ", x(sample.t));
            let _ = write!(done, "L{:.1},{yc:.1} ", x(sample.t));
            prev = Some(*sample);
        }
        let _ = writeln!(
            s,
            r#"<path d="{util}" fill="none" stroke="{color}" stroke-width="1.5"/>"#
        );
        let _ = writeln!(
            s,
            r#"<path d="{done}" fill="none" stroke="{color}" stroke-width="1.5"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
            w - pad - 150.0,
            pad + 16.0 * (i as f64 + 1.0),
            escape(&r.scheduler)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod ratio_tests {
    use super::big_small_ratio;

    #[test]
    fn big_over_small_compares_the_outer_quartiles_of_gang_size() {
        let sized = [(2, 10.0), (2, 10.0), (4, 500.0), (8, 100.0), (8, 100.0)];
        assert_eq!(big_small_ratio(&sized), Some(10.0));
        // Small gangs that never waited give no ratio (not infinity).
        assert_eq!(
            big_small_ratio(&[(2, 0.0), (2, 0.0), (8, 5.0), (8, 5.0)]),
            None
        );
        // One size only: nothing to compare.
        assert_eq!(big_small_ratio(&[(4, 1.0); 8]), None);
    }

    #[test]
    fn jain_is_one_when_even_and_one_over_n_when_one_takes_all() {
        use super::jain;
        assert_eq!(jain(&[2.0, 2.0, 2.0]), Some(1.0));
        let j = jain(&[4.0, 0.0, 0.0, 0.0]).unwrap_or(0.0);
        assert!((j - 0.25).abs() < 1e-12, "{j}");
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[0.0, 0.0]), None);
    }

    #[test]
    fn quartile_means_reports_both_ends() {
        let sized = [(2, 10.0), (2, 20.0), (4, 500.0), (8, 100.0), (8, 300.0)];
        assert_eq!(super::quartile_means(&sized), Some((15.0, 200.0)));
    }
}
