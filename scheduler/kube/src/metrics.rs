//! Prometheus metrics of `phalanx run`, served as text on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a scheduling attempt's result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `scheduled`, `waiting`, `unschedulable`, `error`.
    pub result: String,
}

/// Label of a group's size: a power-of-two class of its pod count (`1`,
/// `2-3`, `4-7`, ... `512+`), so that waits of big and small gangs can be
/// compared with a bounded number of series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeLabel {
    /// The class, e.g. `8-15`.
    pub pods: String,
}

impl SizeLabel {
    /// The class of a group placed with `pods` pods.
    pub fn of(pods: usize) -> Self {
        let pods = match pods {
            0 | 1 => "1".to_string(),
            n if n >= 512 => "512+".to_string(),
            n => {
                let low = 1usize << n.ilog2();
                format!("{low}-{}", 2 * low - 1)
            }
        };
        Self { pods }
    }
}

/// Every metric the scheduler exports.
#[derive(Debug)]
pub struct Metrics {
    /// Group scheduling attempts by result.
    pub attempts: Family<ResultLabel, Counter>,
    /// Time from a change to the end of the scheduling pass, seconds.
    pub scheduling_latency: Histogram,
    /// Time spent inside the core's schedule() per pass, seconds.
    pub match_latency: Histogram,
    /// Pods of ours not yet bound.
    pub pending_pods: Gauge,
    /// Groups not yet scheduled.
    pub pending_groups: Gauge,
    /// Successful binds.
    pub binds: Counter,
    /// Failed binds by result (conflict, gone, error).
    pub bind_failures: Family<ResultLabel, Counter>,
    /// Nodes in the resource graph.
    pub graph_nodes: Gauge,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Time from bind request to API answer, seconds.
    pub bind_latency: Histogram,
    /// Events published.
    pub events_published: Counter,
    /// Events dropped because the Event queue was full.
    pub events_dropped: Counter,
    /// Preemptions carried out (one per preemptor and decision, however many victims).
    pub preemptions: Counter,
    /// Victim pods deleted by preemption.
    pub preempted_pods: Counter,
    /// How long groups waited for their placement as a whole, seconds, by size class.
    pub group_wait: Family<SizeLabel, Histogram>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            attempts: Family::default(),
            scheduling_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            match_latency: Histogram::new(exponential_buckets(0.00001, 2.0, 20)),
            pending_pods: Gauge::default(),
            pending_groups: Gauge::default(),
            binds: Counter::default(),
            bind_failures: Family::default(),
            graph_nodes: Gauge::default(),
            leader: Gauge::default(),
            bind_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            events_published: Counter::default(),
            events_dropped: Counter::default(),
            preemptions: Counter::default(),
            preempted_pods: Counter::default(),
            // 0.1 s to about 4.5 days.
            group_wait: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.1, 2.0, 23))
            }),
        };
        let r = registry.sub_registry_with_prefix("phalanx");
        r.register(
            "schedule_attempts",
            "Group scheduling attempts by result",
            m.attempts.clone(),
        );
        r.register(
            "scheduling_latency_seconds",
            "From a cluster change to the end of the scheduling pass",
            m.scheduling_latency.clone(),
        );
        r.register(
            "match_latency_seconds",
            "Time in the gang core's scheduling pass",
            m.match_latency.clone(),
        );
        r.register(
            "pending_pods",
            "Our pods not yet bound",
            m.pending_pods.clone(),
        );
        r.register(
            "pending_groups",
            "Groups not yet scheduled",
            m.pending_groups.clone(),
        );
        r.register("binds", "Successful pod bindings", m.binds.clone());
        r.register(
            "bind_failures",
            "Failed pod bindings by result",
            m.bind_failures.clone(),
        );
        r.register(
            "graph_nodes",
            "Kubernetes nodes in the resource graph",
            m.graph_nodes.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
        r.register(
            "bind_latency_seconds",
            "Bind request round trip",
            m.bind_latency.clone(),
        );
        r.register(
            "events_published",
            "Events published",
            m.events_published.clone(),
        );
        r.register(
            "events_dropped",
            "Events dropped because the Event queue was full",
            m.events_dropped.clone(),
        );
        r.register(
            "preemptions",
            "Preemptions carried out: a higher-priority group evicting lower-priority ones",
            m.preemptions.clone(),
        );
        r.register(
            "preempted_pods",
            "Pods deleted as preemption victims",
            m.preempted_pods.clone(),
        );
        r.register(
            "group_wait_seconds",
            "How long groups waited before their placement as a whole, by size class (pods)",
            m.group_wait.clone(),
        );
        m
    }
}

/// Label helper.
pub fn result(r: &str) -> ResultLabel {
    ResultLabel {
        result: r.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::SizeLabel;

    #[test]
    fn sizes_fall_in_power_of_two_classes() {
        let class = |n| SizeLabel::of(n).pods;
        assert_eq!(class(0), "1");
        assert_eq!(class(1), "1");
        assert_eq!(class(2), "2-3");
        assert_eq!(class(3), "2-3");
        assert_eq!(class(8), "8-15");
        assert_eq!(class(511), "256-511");
        assert_eq!(class(512), "512+");
        assert_eq!(class(usize::MAX), "512+");
    }
}
