//! Object storage with one global resourceVersion, a bounded change history for
//! watches, and the write semantics of a real API server (preconditions, status
//! subresource, binding).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};

/// The type of one watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl ChangeType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as recorded for watches.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// Storage key of the resource type (`group/version/plural`).
    pub resource: String,
    /// What happened.
    pub kind: ChangeType,
    /// The object after the change (before it, for deletions).
    pub object: Value,
    /// The object before a modification, so selector watches can turn moves into ADDED/DELETED.
    pub old: Option<Value>,
}

/// An error the API server answers with a `Status` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, `AlreadyExists`, `Expired`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with the given code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// 404 for a named object.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.plural),
        )
    }

    /// 409 for a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                rt.plural
            ),
        )
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}

/// A JSON merge patch (RFC 7386) applied in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A strategic merge patch as kube-apiserver applies it to the fields the
/// scheduler patches: like a merge patch, except that the lists Kubernetes
/// declares with a merge key (`status.conditions`, keyed by `type`) are
/// merged entry by entry instead of replaced.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let mut plain = patch.clone();
    let conditions = plain
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.remove("conditions"));
    merge_patch(target, &plain);
    let Some(Value::Array(new)) = conditions else {
        if let Some(c) = conditions {
            merge_patch(&mut target["status"]["conditions"], &c);
        }
        return;
    };
    if !target["status"].is_object() {
        target["status"] = json!({});
    }
    let mut merged: Vec<Value> = target["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in new {
        match merged.iter_mut().find(|m| m.get("type") == c.get("type")) {
            Some(m) => merge_patch(m, &c),
            None => merged.push(c),
        }
    }
    target["status"]["conditions"] = Value::Array(merged);
}

/// The time `secs` seconds from now, RFC 3339.
fn rfc3339_in(secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Default `terminationGracePeriodSeconds` of a pod (kube-apiserver's defaulting).
const DEFAULT_GRACE_SECONDS: i64 = 30;

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

type ObjectKey = (String, String);

/// The start of a watch: changes to replay, then a live feed.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// All objects of all resource types plus the watch history.
#[derive(Debug)]
pub struct Store {
    pub(crate) types: Vec<ResourceType>,
    rv: u64,
    uid_counter: u64,
    objects: HashMap<String, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches starting before this resourceVersion get 410 Gone.
    oldest_watchable: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// pods/binding clears `status.nominatedNodeName`, as kube-apiserver does
    /// with the `ClearingNominatedNodeNameAfterBinding` feature gate (beta
    /// and on by default since 1.35). Off: a 1.34 or older server.
    pub clear_nominated_on_bind: bool,
}

impl Store {
    /// An empty store serving the given types.
    pub fn new(types: Vec<ResourceType>) -> Self {
        let (tx, _) = broadcast::channel(1 << 16);
        Self {
            types,
            rv: 1,
            uid_counter: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: 1 << 16,
            oldest_watchable: 1,
            tx,
            clear_nominated_on_bind: true,
        }
    }

    /// Looks up a served type by group, version and plural.
    pub fn resource_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Serves one more type (a CRD being installed).
    pub fn install(&mut self, rt: ResourceType) {
        if !self.types.contains(&rt) {
            self.types.push(rt);
        }
    }

    /// Stops serving a type (as a control plane without that API or feature gate).
    pub fn uninstall(&mut self, rt: &ResourceType) {
        self.types.retain(|t| t != rt);
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Drops the whole watch history: any watch resuming from an older version gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_watchable = self.rv;
    }

    fn record(&mut self, resource: String, kind: ChangeType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            resource,
            kind,
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching yet.
        let _ = self.tx.send(change);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> ObjectKey {
        (
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    /// Reads one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&rt.key())
            .and_then(|m| m.get(&Self::key(rt, ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Lists objects (all namespaces when `ns` is None) with the list's resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .get(&rt.key())
            .map(|m| {
                m.iter()
                    .filter(|((ons, _), _)| ns.is_none_or(|n| !rt.namespaced || n == ons))
                    .map(|(_, o)| o)
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        (items, self.rv)
    }

    /// Creates an object; fills in metadata the server owns.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "body must be a JSON object",
            ));
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            let Some(prefix) = meta_str(&obj, "generateName") else {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                ));
            };
            self.uid_counter += 1;
            name = format!("{prefix}{:05x}", self.uid_counter);
        }
        if rt.plural == "pods" && rt.group.is_empty() {
            self.admit_priority(&name, &mut obj)?;
        }
        if rt.group == "events.k8s.io" {
            super::validation::event_v1(ns, &name, &obj, None)?;
        }
        let key = Self::key(rt, ns, &name);
        if self
            .objects
            .get(&rt.key())
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.plural),
            ));
        }
        self.uid_counter += 1;
        let rv = self.next_rv();
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uid_counter);
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let meta = &mut obj["metadata"];
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["name"] = json!(name);
        if rt.namespaced {
            meta["namespace"] = json!(ns);
        }
        meta["uid"] = json!(uid);
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["generation"] = json!(1);
        super::strategy::prepare_for_create(rt, &mut obj);
        if rt.plural == "pods"
            && rt.group.is_empty()
            && obj.pointer("/spec/schedulerName").is_none()
            && obj["spec"].is_object()
        {
            obj["spec"]["schedulerName"] = json!("default-scheduler");
        }
        self.objects
            .entry(rt.key())
            .or_default()
            .insert(key, obj.clone());
        self.record(rt.key(), ChangeType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// The Priority admission plugin: resolves `spec.priorityClassName` (or
    /// the global default class) into `spec.priority` and
    /// `spec.preemptionPolicy`; an unknown class or a priority that disagrees
    /// with the class is refused (403), as kube-apiserver refuses it.
    fn admit_priority(&self, name: &str, pod: &mut Value) -> Result<(), ApiError> {
        if !pod["spec"].is_object() {
            return Ok(());
        }
        let classes: Vec<&Value> = self
            .objects
            .get("scheduling.k8s.io/v1/priorityclasses")
            .map(|m| m.values().collect())
            .unwrap_or_default();
        let forbidden = |why: String| {
            ApiError::new(
                403,
                "Forbidden",
                format!("pods \"{name}\" is forbidden: {why}"),
            )
        };
        let class_name = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let class = match &class_name {
            Some(n) => Some(
                classes
                    .iter()
                    .find(|c| meta_str(c, "name") == Some(n.as_str()))
                    .copied()
                    .ok_or_else(|| {
                        forbidden(format!("no PriorityClass with name {n} was found"))
                    })?,
            ),
            None => classes
                .iter()
                .find(|c| c["globalDefault"] == json!(true))
                .copied(),
        };
        let priority = class.and_then(|c| c["value"].as_i64()).unwrap_or(0);
        if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
            && given != priority
        {
            return Err(forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; \
                 priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        pod["spec"]["priority"] = json!(priority);
        if let Some(c) = class {
            if class_name.is_none() {
                pod["spec"]["priorityClassName"] = c["metadata"]["name"].clone();
            }
            if pod.pointer("/spec/preemptionPolicy").is_none() {
                pod["spec"]["preemptionPolicy"] = c
                    .get("preemptionPolicy")
                    .cloned()
                    .unwrap_or_else(|| json!("PreemptLowerPriority"));
            }
        }
        Ok(())
    }

    /// Stores `candidate` as the new version of an existing object, keeping server-owned
    /// metadata and honouring the status subresource split.
    fn commit(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut candidate: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(rt, ns, name)?;
        if !candidate.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "body must be a JSON object",
            ));
        }
        // As the generic registry's Update: a UID in the body is a precondition.
        let have = meta_str(&current, "uid").unwrap_or("");
        if let Some(want) = meta_str(&candidate, "uid").filter(|u| !u.is_empty() && *u != have) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: \
                     UID in precondition: {want}, UID in object meta: {have}",
                    rt.plural
                ),
            ));
        }
        let mut next = if status_only {
            let mut next = current.clone();
            match candidate.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            next
        } else {
            if rt.status_subresource {
                match current.get("status") {
                    Some(s) => candidate["status"] = s.clone(),
                    None => {
                        if let Some(o) = candidate.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            candidate
        };
        if rt.group == "events.k8s.io" {
            super::validation::event_v1(ns, name, &next, Some(&current))?;
        }
        let spec_changed = next.get("spec") != current.get("spec");
        let rv = self.next_rv();
        next["apiVersion"] = json!(rt.api_version());
        next["kind"] = json!(rt.kind);
        if !next["metadata"].is_object() {
            next["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            match current["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if spec_changed {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects
            .entry(rt.key())
            .or_default()
            .insert(Self::key(rt, ns, name), next.clone());
        self.record(rt.key(), ChangeType::Modified, next.clone(), Some(current));
        Ok(next)
    }

    fn check_precondition(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let current = self.get(rt, ns, name)?;
        if let Some(want) = meta_str(body, "resourceVersion").filter(|s| !s.is_empty())
            && Some(want) != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::conflict(rt, name));
        }
        Ok(current)
    }

    /// PUT: replaces an object (or its status); a stale `metadata.resourceVersion` is a 409.
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        if let Some(body_name) = meta_str(&body, "name")
            && body_name != name
        {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the name of the object does not match the name in the URL",
            ));
        }
        self.check_precondition(rt, ns, name, &body)?;
        self.commit(rt, ns, name, body, status_only)
    }

    /// PATCH with merge semantics (merge patch, apply).
    /// `create` makes a missing object, as server-side apply does.
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
        create: bool,
    ) -> Result<Value, ApiError> {
        self.patch_with(rt, ns, name, patch, status_only, create, merge_patch)
    }

    /// PATCH with a strategic merge patch (see [`strategic_merge_patch`]).
    pub fn strategic_patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        self.patch_with(
            rt,
            ns,
            name,
            patch,
            status_only,
            false,
            strategic_merge_patch,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn patch_with(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
        create: bool,
        apply: fn(&mut Value, &Value),
    ) -> Result<Value, ApiError> {
        let current = match self.check_precondition(rt, ns, name, patch) {
            Err(e) if e.code == 404 && create && !status_only => {
                let mut obj = patch.clone();
                obj["metadata"]["name"] = json!(name);
                return self.create(rt, ns, obj);
            }
            other => other?,
        };
        let mut next = current;
        apply(&mut next, patch);
        self.commit(rt, ns, name, next, status_only)
    }

    /// DELETE: removes an object immediately and returns its last state.
    pub fn delete(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let removed = self
            .objects
            .get_mut(&rt.key())
            .and_then(|m| m.remove(&Self::key(rt, ns, name)))
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let rv = self.next_rv();
        let mut last = removed;
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(rt.key(), ChangeType::Deleted, last.clone(), None);
        Ok(last)
    }

    /// DELETE with `DeleteOptions`, as kube-apiserver does it: `preconditions`
    /// (`uid`, `resourceVersion`) that do not hold are a 409; a pod that is
    /// bound and has not ended is deleted gracefully: `metadata.deletionTimestamp`
    /// and `deletionGracePeriodSeconds` are set (`gracePeriodSeconds`, else the
    /// pod's `terminationGracePeriodSeconds`, else 30) and the kubelet removes it
    /// later; a second graceful delete may only shorten the grace. Everything
    /// else (and a grace of 0) is removed at once.
    pub fn delete_with(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let current = self.get(rt, ns, name)?;
        let precondition = |field: &str, label: &str| -> Result<(), ApiError> {
            let want = options
                .pointer(&format!("/preconditions/{field}"))
                .and_then(Value::as_str);
            let have = meta_str(&current, field).unwrap_or("");
            match want {
                Some(w) if w != have => Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: \
                         {label} in precondition: {w}, {label} in object meta: {have}",
                        rt.plural
                    ),
                )),
                _ => Ok(()),
            }
        };
        precondition("uid", "UID")?;
        precondition("resourceVersion", "ResourceVersion")?;
        let is_pod = rt.plural == "pods" && rt.group.is_empty();
        if !is_pod {
            return self.delete(rt, ns, name);
        }
        let bound = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let ended = matches!(
            current.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let asked = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        let grace = if !bound || ended {
            0
        } else {
            asked
                .or_else(|| {
                    current
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(DEFAULT_GRACE_SECONDS)
                .max(0)
        };
        if grace == 0 {
            return self.delete(rt, ns, name);
        }
        let previous = current
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if previous.is_some_and(|p| p <= grace) {
            return Ok(current);
        }
        self.mutate(rt, ns, name, |p| {
            p["metadata"]["deletionTimestamp"] = json!(rfc3339_in(grace));
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        })
    }

    /// pods/binding: sets `spec.nodeName` once; 409 if already bound or still gated
    /// (`spec.schedulingGates`), 404 if the pod is gone.
    pub fn bind(&mut self, ns: &str, name: &str, node: &str) -> Result<Value, ApiError> {
        let rt = self
            .resource_type("", "v1", "pods")
            .ok_or_else(|| ApiError::new(404, "NotFound", "pods are not served"))?;
        let mut pod = self.get(&rt, ns, name)?;
        if let Some(bound) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
                ),
            ));
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is being deleted, cannot be assigned to a host"
                ),
            ));
        }
        // As kube-apiserver's BindingREST: a pod that is not ready for scheduling cannot be bound.
        if pod
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} has non-empty .spec.schedulingGates"
                ),
            ));
        }
        if !pod["spec"].is_object() {
            pod["spec"] = json!({});
        }
        pod["spec"]["nodeName"] = json!(node);
        let mut conditions: Vec<Value> = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(
            json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}),
        );
        if !pod["status"].is_object() {
            pod["status"] = json!({});
        }
        pod["status"]["conditions"] = json!(conditions);
        if self.clear_nominated_on_bind
            && let Some(status) = pod["status"].as_object_mut()
        {
            status.remove("nominatedNodeName");
        }
        // Binding writes spec and status together, bypassing the status split.
        let current = self.get(&rt, ns, name)?;
        let rv = self.next_rv();
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects
            .entry(rt.key())
            .or_default()
            .insert(Self::key(&rt, ns, name), pod.clone());
        self.record(rt.key(), ChangeType::Modified, pod.clone(), Some(current));
        Ok(pod)
    }

    /// Direct mutation of a stored object (for hooks: kubelet, tests); records a MODIFIED event.
    pub fn mutate(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let current = self.get(rt, ns, name)?;
        let mut next = current.clone();
        f(&mut next);
        let rv = self.next_rv();
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects
            .entry(rt.key())
            .or_default()
            .insert(Self::key(rt, ns, name), next.clone());
        self.record(rt.key(), ChangeType::Modified, next.clone(), Some(current));
        Ok(next)
    }

    /// Starts a watch from `from_rv`: the recorded changes after it plus a live receiver.
    /// A version older than the retained history is 410 Gone.
    pub fn watch_from(&self, rt: &ResourceType, from_rv: u64) -> Result<WatchStart, ApiError> {
        if from_rv < self.oldest_watchable {
            return Err(ApiError::new(
                410,
                "Expired",
                format!(
                    "too old resource version: {from_rv} ({})",
                    self.oldest_watchable
                ),
            ));
        }
        let key = rt.key();
        let backlog = self
            .history
            .iter()
            .filter(|c| c.rv > from_rv && c.resource == key)
            .cloned()
            .collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// A live receiver of every change (for hooks such as the simulated kubelet).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> ResourceType {
        ResourceType::new("", "v1", "pods", "Pod", true, true)
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [3]}));
    }

    #[test]
    fn stale_update_conflicts_and_status_is_split() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        let p = s
            .create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap();
        let rv0 = p["metadata"]["resourceVersion"].clone();
        let mut upd = p.clone();
        upd["metadata"]["labels"] = json!({"x": "1"});
        upd["status"] = json!({"phase": "Running"});
        let p1 = s.replace(&rt, "ns", "p", upd.clone(), false).unwrap();
        assert_eq!(p1["status"]["phase"], "Pending", "main PUT keeps status");
        assert_ne!(p1["metadata"]["resourceVersion"], rv0);
        let err = s.replace(&rt, "ns", "p", upd, false).unwrap_err();
        assert_eq!(err.code, 409);
        let p2 = s
            .patch(
                &rt,
                "ns",
                "p",
                &json!({"status": {"phase": "Running"}}),
                true,
                false,
            )
            .unwrap();
        assert_eq!(p2["status"]["phase"], "Running");
    }

    #[test]
    fn bind_once() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        s.create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap();
        assert_eq!(s.bind("ns", "p", "n1").unwrap()["spec"]["nodeName"], "n1");
        assert_eq!(s.bind("ns", "p", "n2").unwrap_err().code, 409);
        assert_eq!(s.bind("ns", "q", "n2").unwrap_err().code, 404);
    }

    #[test]
    fn gated_pod_is_not_bound() {
        let mut s = Store::new(vec![pods()]);
        s.create(
            &pods(),
            "ns",
            json!({"metadata": {"name": "p"}, "spec": {"schedulingGates": [{"name": "g"}]}}),
        )
        .unwrap();
        let err = s.bind("ns", "p", "n1").unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p has non-empty .spec.schedulingGates"
        );
        let p = s.get(&pods(), "ns", "p").unwrap();
        assert!(p.pointer("/spec/nodeName").is_none());
        s.mutate(&pods(), "ns", "p", |p| {
            p["spec"]["schedulingGates"] = json!([])
        })
        .unwrap();
        s.bind("ns", "p", "n1").unwrap();
    }

    #[test]
    fn bound_pods_are_deleted_gracefully_and_preconditions_hold() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        let p = s
            .create(
                &rt,
                "ns",
                json!({"metadata": {"name": "p"}, "spec": {"terminationGracePeriodSeconds": 5}}),
            )
            .unwrap();
        let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
        s.bind("ns", "p", "n1").unwrap();
        let wrong = json!({"preconditions": {"uid": "someone-else"}});
        let err = s.delete_with(&rt, "ns", "p", &wrong).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("Precondition failed: UID"),
            "{}",
            err.message
        );
        let mine = json!({"preconditions": {"uid": uid}});
        let t = s.delete_with(&rt, "ns", "p", &mine).unwrap();
        assert_eq!(t["metadata"]["deletionGracePeriodSeconds"], 5);
        assert!(t["metadata"]["deletionTimestamp"].is_string());
        assert!(
            s.get(&rt, "ns", "p").is_ok(),
            "still there while terminating"
        );
        // A longer grace does not extend it; a shorter one (0) ends it.
        let again = s
            .delete_with(&rt, "ns", "p", &json!({"gracePeriodSeconds": 60}))
            .unwrap();
        assert_eq!(again["metadata"]["deletionGracePeriodSeconds"], 5);
        s.delete_with(&rt, "ns", "p", &json!({"gracePeriodSeconds": 0}))
            .unwrap();
        assert_eq!(s.get(&rt, "ns", "p").unwrap_err().code, 404);
        // Unbound pods go at once.
        s.create(&rt, "ns", json!({"metadata": {"name": "q"}, "spec": {}}))
            .unwrap();
        s.delete_with(&rt, "ns", "q", &json!({})).unwrap();
        assert_eq!(s.get(&rt, "ns", "q").unwrap_err().code, 404);
    }

    #[test]
    fn a_terminating_pod_cannot_be_bound() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        s.create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap();
        s.mutate(&rt, "ns", "p", |p| {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
        })
        .unwrap();
        let err = s.bind("ns", "p", "n1").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains("is being deleted"), "{}", err.message);
    }

    #[test]
    fn binding_clears_the_nominated_node_as_kube_apiserver_1_35() {
        let rt = pods();
        let nominate = json!({"status": {"nominatedNodeName": "n2"}});
        for (clears, left) in [(true, Value::Null), (false, json!("n2"))] {
            let mut s = Store::new(vec![rt.clone()]);
            s.clear_nominated_on_bind = clears;
            s.create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
                .unwrap();
            let p = s.strategic_patch(&rt, "ns", "p", &nominate, true).unwrap();
            assert_eq!(p["status"]["nominatedNodeName"], "n2");
            let p = s.bind("ns", "p", "n1").unwrap();
            assert_eq!(p["spec"]["nodeName"], "n1");
            // Without the gate (1.34 and older) the field is left as it was.
            assert_eq!(p["status"]["nominatedNodeName"], left, "gate on: {clears}");
        }
    }

    #[test]
    fn strategic_patch_merges_conditions_by_type() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        s.create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap();
        s.bind("ns", "p", "n1").unwrap();
        let patch = json!({"status": {"nominatedNodeName": "n2", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}});
        let p = s.strategic_patch(&rt, "ns", "p", &patch, true).unwrap();
        let types: Vec<&str> = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["PodScheduled", "DisruptionTarget"]);
        assert_eq!(p["status"]["nominatedNodeName"], "n2");
        let again =
            json!({"status": {"conditions": [{"type": "DisruptionTarget", "message": "m"}]}});
        let p = s.strategic_patch(&rt, "ns", "p", &again, true).unwrap();
        assert_eq!(p["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(
            p["status"]["conditions"][1]["reason"],
            "PreemptionByScheduler"
        );
        assert_eq!(p["status"]["conditions"][1]["message"], "m");
    }

    #[test]
    fn priority_admission_resolves_classes() {
        let rt = pods();
        let pc = ResourceType::new(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            false,
            false,
        );
        let mut s = Store::new(vec![rt.clone(), pc.clone()]);
        let plain = s
            .create(
                &rt,
                "ns",
                json!({"metadata": {"name": "plain"}, "spec": {}}),
            )
            .unwrap();
        assert_eq!(plain["spec"]["priority"], 0);
        s.create(
            &pc,
            "",
            json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}),
        )
        .unwrap();
        let high = s
            .create(
                &rt,
                "ns",
                json!({"metadata": {"name": "h"}, "spec": {"priorityClassName": "high"}}),
            )
            .unwrap();
        assert_eq!(high["spec"]["priority"], 1000);
        assert_eq!(high["spec"]["preemptionPolicy"], "Never");
        let missing = s
            .create(
                &rt,
                "ns",
                json!({"metadata": {"name": "m"}, "spec": {"priorityClassName": "nope"}}),
            )
            .unwrap_err();
        assert_eq!(missing.code, 403);
        assert!(
            missing.message.contains("no PriorityClass with name nope"),
            "{}",
            missing.message
        );
        let forged = s
            .create(
                &rt,
                "ns",
                json!({"metadata": {"name": "f"}, "spec": {"priority": 5}}),
            )
            .unwrap_err();
        assert_eq!(forged.code, 403);
        s.create(
            &pc,
            "",
            json!({"metadata": {"name": "default"}, "value": 7, "globalDefault": true}),
        )
        .unwrap();
        let d = s
            .create(&rt, "ns", json!({"metadata": {"name": "d"}, "spec": {}}))
            .unwrap();
        assert_eq!(d["spec"]["priority"], 7);
        assert_eq!(d["spec"]["priorityClassName"], "default");
        assert_eq!(d["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn compacted_history_is_gone() {
        let rt = pods();
        let mut s = Store::new(vec![rt.clone()]);
        s.create(&rt, "ns", json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap();
        assert_eq!(s.watch_from(&rt, 1).unwrap().0.len(), 1);
        s.compact();
        assert_eq!(s.watch_from(&rt, 1).unwrap_err().code, 410);
    }
}
