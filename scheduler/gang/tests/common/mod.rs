//! A small driver for the gang core shared by the preemption and elastic
//! tests: it carries out decisions as the Kubernetes adapter does (binds
//! succeed and the pods run; victims are marked terminating, then deleted
//! when a test says so) and keeps the pods as the API server would.

#![allow(dead_code)]

use std::collections::BTreeMap;

use phalanx_gang::*;

/// An 8-core node, no GPUs, in rack `r{i / per_rack}`.
pub fn node(i: usize, per_rack: usize) -> Node {
    Node {
        name: format!("n{i}"),
        allocatable: Resources::new(8000, 64 << 30, 0),
        max_pods: 110,
        zone: Some(format!("z{}", i / (per_rack * 2))),
        rack: Some(format!("r{}", i / per_rack)),
        ready: true,
        ..Default::default()
    }
}

/// A pod group.
pub fn group(name: &str, min: u32, priority: i32, t_s: i64) -> PodGroup {
    PodGroup {
        key: GroupKey::new("ns", name),
        min_member: min,
        schedule_timeout: Some(Millis::from_secs(600)),
        priority,
        created: Timestamp::from_secs(t_s),
        expected_duration: Some(Millis::from_secs(3600)),
        topology_key: None,
        max_member: None,
        preemption_policy: None,
        disruption: Default::default(),
    }
}

/// Pod `i` of group `g`.
pub fn pod(g: &str, i: u32, cpu: u64, priority: i32, t_s: i64) -> Pod {
    Pod {
        uid: PodUid(format!("{g}-{i}")),
        namespace: "ns".into(),
        name: format!("{g}-{i}"),
        requests: Resources::new(cpu, 1 << 30, 0),
        group: Some(GroupKey::new("ns", g)),
        priority,
        scheduler_name: "phalanx".into(),
        node_name: None,
        phase: PodPhase::Pending,
        node_selector: BTreeMap::new(),
        required_affinity: Vec::new(),
        tolerations: Vec::new(),
        created: Timestamp::from_secs(t_s),
        expected_duration: None,
        preemption_policy: Default::default(),
        labels: BTreeMap::from([("job".to_owned(), g.to_owned())]),
        terminating: false,
        termination_grace: None,
    }
}

/// The core and the pods as the API server holds them.
pub struct Sim {
    /// The core under test.
    pub core: GangScheduler,
    /// Pods that exist, by UID.
    pub pods: BTreeMap<PodUid, Pod>,
    /// Seconds of virtual time.
    pub now: i64,
    /// Every preemption emitted so far.
    pub preemptions: Vec<Preemption>,
}

impl Sim {
    /// `nodes` 8-core nodes, `per_rack` to a rack.
    pub fn new(nodes: usize, per_rack: usize) -> Self {
        Self::with_config(nodes, per_rack, GangConfig::default())
    }

    /// As [`Sim::new`], with settings.
    pub fn with_config(nodes: usize, per_rack: usize, config: GangConfig) -> Self {
        let mut core = GangScheduler::new(config);
        for i in 0..nodes {
            core.apply(Event::NodeUpsert(node(i, per_rack)));
        }
        Sim {
            core,
            pods: BTreeMap::new(),
            now: 1,
            preemptions: Vec::new(),
        }
    }

    /// Adds a group and `size` pods of `cpu` millicores at the current time.
    pub fn add_group(&mut self, spec: PodGroup, size: u32, cpu: u64) {
        let name = spec.key.name.clone();
        let priority = spec.priority;
        self.core.apply(Event::GroupUpsert(spec));
        for i in 0..size {
            self.add_pod(pod(&name, i, cpu, priority, self.now));
        }
    }

    /// Adds (or changes) a pod.
    pub fn add_pod(&mut self, p: Pod) {
        self.pods.insert(p.uid.clone(), p.clone());
        self.core.apply(Event::PodUpsert(p));
    }

    /// One pass at the current time: binds succeed and the pods run;
    /// preemptions are recorded (victims are not touched). Time moves on 1 s.
    pub fn pass(&mut self) -> Decisions {
        let d = self.core.schedule(Timestamp::from_secs(self.now));
        for plan in &d.binds {
            for b in &plan.pods {
                self.core.apply(Event::BindResult {
                    pod: b.pod.clone(),
                    node: b.node.clone(),
                    outcome: BindOutcome::Bound,
                });
                if let Some(p) = self.pods.get_mut(&b.pod) {
                    p.node_name = Some(b.node.clone());
                    p.phase = PodPhase::Running;
                    let p = p.clone();
                    self.core.apply(Event::PodUpsert(p));
                }
            }
        }
        self.preemptions.extend(d.preemptions.iter().cloned());
        self.now += 1;
        d
    }

    /// Passes until one decides nothing (at most `n`).
    pub fn settle(&mut self, n: usize) {
        for _ in 0..n {
            if self.pass().is_empty() {
                break;
            }
        }
    }

    /// Marks a pod terminating (deletionTimestamp set), as the API server
    /// does when a running pod is deleted with a grace period.
    pub fn terminate(&mut self, uid: &PodUid) {
        if let Some(p) = self.pods.get_mut(uid) {
            p.terminating = true;
            let p = p.clone();
            self.core.apply(Event::PodUpsert(p));
        }
    }

    /// The pod is gone.
    pub fn delete(&mut self, uid: &PodUid) {
        if self.pods.remove(uid).is_some() {
            self.core.apply(Event::PodDelete(uid.clone()));
        }
    }

    /// Every victim pod of every preemption so far: terminating now.
    pub fn terminate_victims(&mut self) {
        for uid in self.victim_pods() {
            self.terminate(&uid);
        }
    }

    /// Every victim pod of every preemption so far: gone now.
    pub fn delete_victims(&mut self) {
        for uid in self.victim_pods() {
            self.delete(&uid);
        }
    }

    /// Victim pods of every preemption so far.
    pub fn victim_pods(&self) -> Vec<PodUid> {
        self.preemptions
            .iter()
            .flat_map(|p| &p.victims)
            .flat_map(|v| &v.pods)
            .map(|b| b.pod.clone())
            .collect()
    }

    /// Pods of group `name` bound to a node.
    pub fn bound(&self, name: &str) -> usize {
        self.pods
            .values()
            .filter(|p| p.group.as_ref().is_some_and(|g| g.name == name) && p.node_name.is_some())
            .count()
    }

    /// The node each bound pod of group `name` runs on.
    pub fn nodes_of(&self, name: &str) -> Vec<String> {
        self.pods
            .values()
            .filter(|p| p.group.as_ref().is_some_and(|g| g.name == name))
            .filter_map(|p| p.node_name.clone())
            .collect()
    }
}
