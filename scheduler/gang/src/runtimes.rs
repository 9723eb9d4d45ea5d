//! Run times learned from finished groups, for groups that do not say
//! theirs (no `phalanx.dev/duration-seconds`): a group is expected to run
//! about as long as the last groups of the same shape in its namespace
//! ran. Reservations and the queue order (`order_runtimes`) then follow the
//! workload rather than one `default_duration` for everything.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::model::{GroupKey, Resources};
use crate::time::{Millis, Timestamp};

/// Shapes remembered at most; the oldest learned shape is forgotten first,
/// so a cluster that keeps creating new shapes cannot grow this without bound.
pub const MAX_SHAPES: usize = 10_000;

/// Groups being timed at most (placed and not finished); a group that never
/// reports its end is dropped, oldest first, past this.
pub const MAX_RUNNING: usize = 100_000;

/// Samples an estimate averages over: recent runs count most, and one
/// outlier moves it by at most 1/8 of the difference once warm.
const WINDOW: u32 = 8;

/// What makes two groups alike: namespace, pod count, one pod's requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    /// A hash of the namespace: looking a shape up allocates nothing.
    namespace: u64,
    pods: u32,
    cpu_millis: u64,
    memory_bytes: u64,
    gpus: u64,
}

impl Shape {
    /// The shape of a group of `pods` pods of `key`'s namespace whose pods
    /// ask for `requests` (extended resources are not told apart).
    pub fn of(key: &GroupKey, pods: u32, requests: &Resources) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.namespace.hash(&mut h);
        Shape {
            namespace: h.finish(),
            pods,
            cpu_millis: requests.cpu_millis,
            memory_bytes: requests.memory_bytes,
            gpus: requests.gpus,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean_ms: f64,
    samples: u32,
}

/// Learned run times by shape, and the groups being timed.
#[derive(Debug, Default)]
pub struct LearnedRuntimes {
    by_shape: HashMap<Shape, Estimate>,
    /// Shapes in the order first learned, for forgetting the oldest.
    learned_order: VecDeque<Shape>,
    /// Groups being timed, with the sequence number of their start.
    running: HashMap<GroupKey, (Shape, Timestamp, u64)>,
    /// Starts in order (entries of groups finished since are skipped), for
    /// dropping the oldest timed group.
    started_order: VecDeque<(GroupKey, u64)>,
    seq: u64,
}

impl LearnedRuntimes {
    /// A group of `shape` was placed at `at`: its run is timed from then.
    pub fn started(&mut self, key: &GroupKey, shape: Shape, at: Timestamp) {
        self.seq += 1;
        self.running.insert(key.clone(), (shape, at, self.seq));
        self.started_order.push_back((key.clone(), self.seq));
        // Finished groups leave their entries behind: trim those too, so
        // the queue stays within twice the groups timed.
        while self.running.len() > MAX_RUNNING || self.started_order.len() > 2 * MAX_RUNNING {
            let Some((old, seq)) = self.started_order.pop_front() else {
                break;
            };
            if self.running.get(&old).is_some_and(|(_, _, s)| *s == seq) {
                self.running.remove(&old);
            }
        }
    }

    /// A timed group ended at `at`; a run that succeeded teaches its
    /// shape's run time (a failed one ended early and says little).
    /// Returns whether an estimate changed.
    pub fn finished(&mut self, key: &GroupKey, at: Timestamp, succeeded: bool) -> bool {
        let Some((shape, start, _)) = self.running.remove(key) else {
            return false;
        };
        if !succeeded {
            return false;
        }
        let before = self.estimate(&shape);
        let learned = shape.clone();
        self.learn(shape, at.since(start));
        self.estimate(&learned) != before
    }

    /// The run time groups of `shape` have taken, if any finished.
    pub fn estimate(&self, shape: &Shape) -> Option<Millis> {
        self.by_shape
            .get(shape)
            .map(|e| Millis(e.mean_ms.round().clamp(0.0, i64::MAX as f64) as i64))
    }

    fn learn(&mut self, shape: Shape, ran: Millis) {
        let x = ran.0.max(0) as f64;
        if let Some(e) = self.by_shape.get_mut(&shape) {
            e.samples = e.samples.saturating_add(1);
            e.mean_ms += (x - e.mean_ms) / f64::from(e.samples.min(WINDOW));
            return;
        }
        self.by_shape.insert(
            shape.clone(),
            Estimate {
                mean_ms: x,
                samples: 1,
            },
        );
        self.learned_order.push_back(shape);
        while self.by_shape.len() > MAX_SHAPES {
            let Some(old) = self.learned_order.pop_front() else {
                break;
            };
            self.by_shape.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> GroupKey {
        GroupKey::new("ns", name)
    }

    fn shape(pods: u32) -> Shape {
        Shape::of(&key("x"), pods, &Resources::new(1000, 1 << 30, 0))
    }

    #[test]
    fn a_shape_learns_from_its_finished_runs() {
        let mut r = LearnedRuntimes::default();
        assert_eq!(r.estimate(&shape(4)), None);
        r.started(&key("a"), shape(4), Timestamp::from_secs(0));
        r.finished(&key("a"), Timestamp::from_secs(100), true);
        assert_eq!(r.estimate(&shape(4)), Some(Millis::from_secs(100)));
        r.started(&key("b"), shape(4), Timestamp::from_secs(10));
        r.finished(&key("b"), Timestamp::from_secs(310), true);
        assert_eq!(r.estimate(&shape(4)), Some(Millis::from_secs(200)));
        // Another shape, or another namespace, learns nothing from these.
        assert_eq!(r.estimate(&shape(8)), None);
        let other = Shape::of(
            &GroupKey::new("other", "a"),
            4,
            &Resources::new(1000, 1 << 30, 0),
        );
        assert_eq!(r.estimate(&other), None);
    }

    #[test]
    fn failed_or_untimed_runs_teach_nothing() {
        let mut r = LearnedRuntimes::default();
        r.started(&key("a"), shape(2), Timestamp::from_secs(0));
        r.finished(&key("a"), Timestamp::from_secs(5), false);
        r.finished(&key("never-started"), Timestamp::from_secs(5), true);
        assert_eq!(r.estimate(&shape(2)), None);
    }

    #[test]
    fn recent_runs_weigh_most_once_the_window_is_full() {
        let mut r = LearnedRuntimes::default();
        for i in 0..20 {
            let k = key(&format!("g{i}"));
            r.started(&k, shape(2), Timestamp::from_secs(0));
            r.finished(&k, Timestamp::from_secs(100), true);
        }
        let k = key("slow");
        r.started(&k, shape(2), Timestamp::from_secs(0));
        r.finished(&k, Timestamp::from_secs(900), true);
        // One run of 900 s after twenty of 100 s moves it by 1/8 of 800 s.
        assert_eq!(r.estimate(&shape(2)), Some(Millis::from_secs(200)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = LearnedRuntimes::default();
        for pods in 0..(MAX_SHAPES as u32 + 5) {
            let k = key(&format!("g{pods}"));
            r.started(&k, shape(pods), Timestamp::from_secs(0));
            r.finished(&k, Timestamp::from_secs(1), true);
        }
        assert_eq!(r.by_shape.len(), MAX_SHAPES);
        // The oldest shapes went first.
        assert_eq!(r.estimate(&shape(0)), None);
        assert!(r.estimate(&shape(MAX_SHAPES as u32 + 4)).is_some());
        for i in 0..(MAX_RUNNING + 3) {
            r.started(&key(&format!("r{i}")), shape(1), Timestamp::from_secs(0));
        }
        assert_eq!(r.running.len(), MAX_RUNNING);
    }
}
