//! Phalanx in the simulation: the same gang core as `phalanx run`, fed with
//! events and asked for decisions at virtual time. Its preemptions are
//! carried out as the Kubernetes adapter does: every pod listed is evicted,
//! and the core is told when a victim starts terminating and when it is gone.

use phalanx_gang::{
    BindOutcome, Event, GangConfig, GangScheduler, GroupKey, Millis, PlacementPolicy, Pod,
    PodGroup, PodPhase, PodUid, Timestamp,
};

use crate::engine::{Cluster, Model};

/// The Phalanx gang core behind the model interface.
pub struct PhalanxModel {
    core: GangScheduler,
}

const NS: &str = "sim";

/// The UID of the slot's current pod: a replacement is a new pod.
fn uid(pod: usize, cl: &Cluster<'_>) -> PodUid {
    match cl.pods[pod].generation {
        0 => PodUid(format!("p{pod}")),
        g => PodUid(format!("p{pod}.{g}")),
    }
}

/// The slot of a UID, if it names the slot's current pod.
fn pod_index(id: &PodUid, cl: &Cluster<'_>) -> Option<usize> {
    let slot = id.0.strip_prefix('p')?;
    let index: usize = slot.split('.').next()?.parse().ok()?;
    (index < cl.pods.len() && uid(index, cl) == *id).then_some(index)
}

impl PhalanxModel {
    /// A fresh core on the workload's nodes, set up by `config` (pod events
    /// off, the workload's schedule timeout).
    pub fn new(cl: &Cluster<'_>, config: GangConfig) -> Self {
        let config = GangConfig {
            pod_events: false,
            default_schedule_timeout: Millis(cl.wl.schedule_timeout),
            ..config
        };
        let mut core = GangScheduler::new(config);
        for n in &cl.wl.nodes {
            core.apply(Event::NodeUpsert(n.clone()));
        }
        PhalanxModel { core }
    }

    fn pod(&self, pod: usize, cl: &Cluster<'_>, phase: PodPhase) -> Pod {
        let job = cl.pods[pod].job;
        let spec = &cl.wl.jobs[job];
        let name = match cl.pods[pod].generation {
            0 => format!("{}-{}", spec.name, cl.pods[pod].index),
            g => format!("{}-{}-{g}", spec.name, cl.pods[pod].index),
        };
        Pod {
            uid: uid(pod, cl),
            namespace: NS.to_owned(),
            name,
            requests: spec.requests.clone(),
            group: Some(GroupKey::new(NS, spec.name.clone())),
            priority: spec.priority,
            scheduler_name: "phalanx".to_owned(),
            node_name: None,
            phase,
            node_selector: Default::default(),
            required_affinity: Vec::new(),
            tolerations: Vec::new(),
            created: Timestamp(cl.pods[pod].created_at),
            expected_duration: Some(Millis(spec.estimate)),
            preemption_policy: if spec.never_preempts {
                phalanx_gang::PreemptionPolicy::Never
            } else {
                phalanx_gang::PreemptionPolicy::PreemptLowerPriority
            },
            labels: Default::default(),
            terminating: cl.pods[pod].terminating,
            termination_grace: Some(Millis(cl.wl.termination_grace)),
        }
    }
}

impl Model for PhalanxModel {
    fn name(&self) -> &'static str {
        match self.core.config().policy {
            PlacementPolicy::Pack => "phalanx",
            PlacementPolicy::Spread => "phalanx-spread",
        }
    }

    fn job_arrived(&mut self, job: usize, now: i64, cl: &mut Cluster<'_>) {
        let spec = &cl.wl.jobs[job];
        self.core.apply(Event::GroupUpsert(PodGroup {
            key: GroupKey::new(NS, spec.name.clone()),
            min_member: spec.min_pods,
            schedule_timeout: Some(Millis(cl.wl.schedule_timeout)),
            priority: spec.priority,
            created: Timestamp(now),
            expected_duration: Some(Millis(spec.estimate)),
            topology_key: None,
            max_member: (spec.min_pods < spec.pods).then_some(spec.pods),
            preemption_policy: None,
            // As the Kubernetes adapter does: every gang goes whole (its
            // elastic members above the minimum one by one).
            disruption: phalanx_gang::DisruptionMode::Gang,
        }));
    }

    fn pod_created(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        let p = self.pod(pod, cl, PodPhase::Pending);
        self.core.apply(Event::PodUpsert(p));
    }

    fn pod_terminating(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        let mut p = self.pod(pod, cl, PodPhase::Running);
        p.node_name = self.core.pod_node(&p.uid).map(str::to_owned);
        self.core.apply(Event::PodUpsert(p));
    }

    fn pod_gone(&mut self, pod: usize, _now: i64, cl: &mut Cluster<'_>) {
        self.core.apply(Event::PodDelete(uid(pod, cl)));
    }

    fn job_ended(&mut self, job: usize, _now: i64, cl: &mut Cluster<'_>) {
        for pod in cl.job_pods(job) {
            if cl.pods[pod].terminating {
                // Still holding its resources: deleted when it is gone.
                continue;
            }
            let mut p = self.pod(pod, cl, PodPhase::Succeeded);
            p.node_name = self.core.pod_node(&p.uid).map(str::to_owned);
            self.core.apply(Event::PodUpsert(p));
        }
    }

    fn step(&mut self, now: i64, cl: &mut Cluster<'_>) -> Option<i64> {
        let decisions = self.core.schedule(Timestamp(now));
        for p in &decisions.preemptions {
            for v in &p.victims {
                for b in &v.pods {
                    if let Some(pod) = pod_index(&b.pod, cl) {
                        cl.evict(pod);
                    }
                }
            }
        }
        for plan in decisions.binds {
            for b in plan.pods {
                let Some(pod) = pod_index(&b.pod, cl) else {
                    continue;
                };
                let outcome = match cl.truth.node_id(&b.node) {
                    Some(node) if cl.assume(pod, node) => {
                        cl.bind(pod);
                        BindOutcome::Bound
                    }
                    _ => BindOutcome::Failed {
                        message: "rejected by the kubelet".to_owned(),
                    },
                };
                self.core.apply(Event::BindResult {
                    pod: b.pod,
                    node: b.node,
                    outcome,
                });
            }
        }
        self.core.next_wakeup().map(|t| t.as_millis())
    }
}
