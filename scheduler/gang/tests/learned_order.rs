//! Queue order follows run times learned while gangs wait: a gang without a
//! declared run time moves ahead of a declared longer one once a finished
//! gang of its shape has taught that it is short.

mod common;

use common::{Sim, group};
use phalanx_gang::*;

#[test]
fn a_run_time_learned_while_gangs_wait_reorders_the_queue() {
    let mut sim = Sim::new(2, 2);
    let undeclared = |name: &str, t: i64| {
        let mut g = group(name, 1, 0, t);
        g.expected_duration = None;
        g
    };
    // Two whole-node gangs run; `a` declares nothing, `b` an hour.
    sim.add_group(undeclared("a", 0), 1, 8000);
    sim.add_group(group("b", 1, 0, 0), 1, 8000);
    sim.pass();
    assert_eq!((sim.bound("a"), sim.bound("b")), (1, 1));
    // Three wait: `z` declaring 1 s, `y` declaring 100 s and `x` declaring
    // nothing (so far ordered by the default run time, behind `y`).
    let mut z = group("z", 1, 0, 5);
    z.expected_duration = Some(Millis::from_secs(1));
    sim.add_group(z, 1, 8000);
    let mut y = group("y", 1, 0, 5);
    y.expected_duration = Some(Millis::from_secs(100));
    sim.add_group(y, 1, 8000);
    sim.add_group(undeclared("x", 5), 1, 8000);
    sim.pass();
    // `a` ends after a few seconds: `z` takes its node, and `a`'s shape (that
    // of `x`) is learned to run for seconds.
    finish(&mut sim, "a-0");
    sim.pass();
    assert_eq!(sim.bound("z"), 1);
    // `b` ends: `x` (now expected to take seconds) goes before `y` (100 s).
    finish(&mut sim, "b-0");
    sim.pass();
    assert_eq!(
        (sim.bound("x"), sim.bound("y")),
        (1, 0),
        "the learned run time moved x ahead"
    );
}

fn finish(sim: &mut Sim, uid: &str) {
    let uid = PodUid(uid.into());
    if let Some(p) = sim.pods.get_mut(&uid) {
        p.phase = PodPhase::Succeeded;
        let p = p.clone();
        sim.core.apply(Event::PodUpsert(p));
    }
}
