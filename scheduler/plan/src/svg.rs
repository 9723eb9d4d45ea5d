//! A Gantt chart of the plan as a standalone SVG: one row per MiniCluster
//! (its up time as a band, the bring-up hatched), its steps as bars inside,
//! stacked when they run at once.

use std::fmt::Write as _;

use crate::output::clock;
use crate::plan::Plan;
use crate::workflow::Workflow;

const LEFT: f64 = 210.0;
const WIDTH: f64 = 1100.0;
const BAR: f64 = 20.0;
const GAP: f64 = 4.0;
const ROW_PAD: f64 = 8.0;
const PALETTE: [&str; 6] = [
    "#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#f28e2b", "#76b7b2",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step (seconds) that gives 5 to 12 ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 12] = [
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 12.0)
        .unwrap_or_else(|| (span / 10.0 / 3600.0).ceil() * 3600.0)
}

/// The chart.
pub fn gantt(wf: &Workflow, plan: &Plan, title: &str) -> String {
    let span = (plan.makespan_ms.max(1) as f64) / 1000.0;
    let scale = (WIDTH - LEFT - 20.0) / span;
    let x = |ms: i64| LEFT + ms as f64 / 1000.0 * scale;
    // Lanes inside each MiniCluster: a step takes the first lane free at its start.
    let mut rows = Vec::with_capacity(plan.miniclusters.len());
    for mc in &plan.miniclusters {
        let mut lanes: Vec<i64> = Vec::new();
        let mut placed = Vec::with_capacity(mc.steps.len());
        for &s in &mc.steps {
            let st = plan.steps[s];
            let lane = match lanes.iter().position(|&end| end <= st.start_ms) {
                Some(l) => l,
                None => {
                    lanes.push(0);
                    lanes.len() - 1
                }
            };
            lanes[lane] = st.end_ms;
            placed.push((s, lane));
        }
        rows.push((lanes.len().max(1), placed));
    }
    let top = 56.0;
    let body: f64 = rows
        .iter()
        .map(|(l, _)| *l as f64 * (BAR + GAP) + 2.0 * ROW_PAD)
        .sum();
    let height = top + body + 44.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    s.push_str(concat!(
        r#"<defs><pattern id="bringup" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"#,
        r##"<rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#999999" stroke-width="2"/></pattern></defs>"##,
        "\n"
    ));
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    // Time axis: grid lines and labels.
    let step = tick_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let px = LEFT + t * scale;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#dddddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{}</text>"##,
            top - 6.0,
            top + body,
            top - 10.0,
            clock(t)
        );
        t += step;
    }
    let mut y = top;
    for (m, (lanes, placed)) in rows.iter().enumerate() {
        let mc = &plan.miniclusters[m];
        let h = *lanes as f64 * (BAR + GAP) - GAP + 2.0 * ROW_PAD;
        let color = PALETTE[mc.pool % PALETTE.len()];
        let pool = &wf.pools[mc.pool].name;
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.1}" font-weight="bold">{}</text><text x="10" y="{:.1}" fill="#555555">{} x {pool}</text>"##,
            y + ROW_PAD + 12.0,
            esc(&mc.name),
            y + ROW_PAD + 27.0,
            mc.size
        );
        let ready = (mc.up_ms + wf.overhead_ms).min(mc.down_ms);
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="url(#bringup)"><title>{}: bring-up</title></rect>"#,
            x(mc.up_ms),
            x(ready) - x(mc.up_ms),
            esc(&mc.name)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}" fill-opacity="0.15" stroke="{color}"><title>{}: up {} to {}</title></rect>"#,
            x(ready),
            (x(mc.down_ms) - x(ready)).max(0.0),
            esc(&mc.name),
            clock(mc.up_ms as f64 / 1000.0),
            clock(mc.down_ms as f64 / 1000.0)
        );
        for &(step, lane) in placed {
            let st = plan.steps[step];
            let by = y + ROW_PAD + lane as f64 * (BAR + GAP);
            let w = x(st.end_ms) - x(st.start_ms);
            let name = &wf.steps[step].name;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{by:.1}" width="{w:.1}" height="{BAR}" rx="3" fill="{color}" stroke="white"><title>{}: {} to {}, {} node(s)</title></rect>"#,
                x(st.start_ms),
                esc(name),
                clock(st.start_ms as f64 / 1000.0),
                clock(st.end_ms as f64 / 1000.0),
                wf.steps[step].nodes
            );
            // Names go inside the bar (about 7 px a character), cut short when needed.
            let room = ((w - 8.0) / 7.0).floor();
            if room >= 3.0 {
                let room = room as usize;
                let shown = if name.chars().count() <= room {
                    name.clone()
                } else {
                    // Keep the end too: names often differ only there (`-a`, `-b`).
                    let total = name.chars().count();
                    let tail = if room >= 6 { 2 } else { 0 };
                    let mut cut: String = name.chars().take(room - 1 - tail).collect();
                    cut.push('\u{2026}');
                    cut.extend(name.chars().skip(total - tail));
                    cut
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" fill="white">{}</text>"#,
                    x(st.start_ms) + 4.0,
                    by + 14.0,
                    esc(&shown)
                );
            }
        }
        y += h;
        let _ = writeln!(
            s,
            r##"<line x1="0" y1="{y:.1}" x2="{WIDTH}" y2="{y:.1}" stroke="#eeeeee"/>"##
        );
    }
    let ly = y + 26.0;
    let _ = writeln!(
        s,
        r##"<rect x="10" y="{:.1}" width="24" height="12" fill="url(#bringup)"/><text x="40" y="{ly:.1}">bring-up ({})</text><rect x="170" y="{:.1}" width="24" height="12" fill="#999999" fill-opacity="0.15" stroke="#999999"/><text x="200" y="{ly:.1}">MiniCluster up</text><rect x="320" y="{:.1}" width="24" height="12" rx="3" fill="#777777"/><text x="350" y="{ly:.1}">step (colour: node pool)</text>"##,
        ly - 10.0,
        clock(wf.overhead_ms as f64 / 1000.0),
        ly - 10.0,
        ly - 10.0
    );
    s.push_str("</svg>\n");
    s
}
