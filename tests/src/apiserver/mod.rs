//! A Kubernetes API test server: real Kubernetes JSON over HTTP on 127.0.0.1, enough
//! for the real kube-rs client (list/watch with resourceVersion, 410 Gone, bookmarks,
//! selectors, create/get/replace/patch/delete, status subresources, pods/binding,
//! discovery), plus hooks that tests use to inject faults and look inside.

mod http;
mod kubelet;
pub mod resources;
pub mod selector;
pub mod store;
mod strategy;
mod validation;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use kubelet::KubeletOptions;
pub use resources::ResourceType;
pub use store::{ApiError, Store};

/// A fault to inject: the next `remaining` matching requests fail with `code`.
#[derive(Debug, Clone)]
struct Fault {
    verb: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    code: u16,
    remaining: usize,
}

/// State shared by the HTTP handler and the hooks.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    counts: Mutex<HashMap<String, u64>>,
    counts_by_group: Mutex<HashMap<(String, String, String), u64>>,
    bookmark_interval: Duration,
    max_watch_timeout: Option<Duration>,
    delays: Mutex<HashMap<String, Duration>>,
}

impl Shared {
    /// The injected delay for `verb resource`, if any.
    fn delay(&self, verb: &str, resource: &str) -> Option<Duration> {
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{verb} {resource}"))
            .copied()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not take every later request down with it.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the request and returns an injected error if one matches.
    fn take_fault(
        &self,
        group: &str,
        verb: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Option<ApiError> {
        *self
            .counts_by_group
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((group.to_string(), resource.to_string(), verb.to_string()))
            .or_default() += 1;
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let i = faults.iter().position(|f| {
            f.verb == verb
                && f.resource == resource
                && (f.namespace.is_none() || f.namespace.as_deref() == ns)
                && (f.name.is_none() || f.name.as_deref() == name)
        })?;
        let f = &mut faults[i];
        let code = f.code;
        f.remaining -= 1;
        if f.remaining == 0 {
            faults.remove(i);
        }
        let reason = match code {
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            429 => "TooManyRequests",
            500 => "InternalError",
            _ => "Unknown",
        };
        Some(ApiError::new(
            code,
            reason,
            format!("injected {code} for {verb} {resource}"),
        ))
    }
}

/// Options for [`ApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Extra resource types (CRDs) served from the start.
    pub extra_types: Vec<ResourceType>,
    /// Ends every watch after at most this long (clients then resume or re-list).
    pub max_watch_timeout: Option<Duration>,
    /// Whether pods/binding clears `status.nominatedNodeName` (kube-apiserver
    /// 1.35 and later, gate `ClearingNominatedNodeNameAfterBinding`); false
    /// serves as an older server.
    pub clear_nominated_on_bind: bool,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
            extra_types: Vec::new(),
            max_watch_timeout: None,
            clear_nominated_on_bind: true,
        }
    }
}

/// A running test API server; stops when dropped.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        for t in self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

fn type_of<K: Resource<DynamicType = ()>>() -> (String, String, String) {
    (
        K::group(&()).into_owned(),
        K::version(&()).into_owned(),
        K::plural(&()).into_owned(),
    )
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port and the built-in types.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(ApiServerOptions::default()).await
    }

    /// Starts a server with options.
    pub async fn start_with(opts: ApiServerOptions) -> std::io::Result<Self> {
        let mut types = resources::builtin();
        types.extend(opts.extra_types);
        let mut store = Store::new(types);
        store.clear_nominated_on_bind = opts.clear_nominated_on_bind;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            counts_by_group: Mutex::new(HashMap::new()),
            bookmark_interval: opts.bookmark_interval,
            max_watch_timeout: opts.max_watch_timeout,
            delays: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("test API server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shared,
            task,
            background: Mutex::new(Vec::new()),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:43121`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configured for this server.
    pub fn client(&self) -> kube::Client {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|_| unreachable!("a socket address is a valid URI"));
        let config = kube::Config::new(url);
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("building a kube client: {e}"))
    }

    /// A kubeconfig YAML pointing at this server (for the scheduler binary).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\nusers:\n- name: test\n  user: {{}}\n",
            self.url()
        )
    }

    /// Direct access to the store (hold the guard briefly).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.shared.lock()
    }

    /// Serves one more type, as installing a CRD would.
    pub fn install(&self, rt: ResourceType) {
        self.store().install(rt);
    }

    /// Stops serving a type, as a control plane without that API (or feature gate) would.
    pub fn uninstall(&self, rt: &ResourceType) {
        self.store().uninstall(rt);
    }

    /// Drops the watch history: watches resuming from older versions get 410 Gone.
    pub fn compact(&self) {
        self.store().compact();
    }

    /// Creates a typed object directly, bypassing HTTP.
    pub fn create<K: Resource<DynamicType = ()> + Serialize>(
        &self,
        obj: &K,
    ) -> Result<Value, ApiError> {
        let (g, v, p) = type_of::<K>();
        let value = serde_json::to_value(obj)
            .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
        let ns = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let mut store = self.store();
        let rt = store
            .resource_type(&g, &v, &p)
            .ok_or_else(|| ApiError::new(404, "NotFound", p.clone()))?;
        store.create(&rt, &ns, value)
    }

    /// Creates an untyped object directly (e.g. a malformed one a typed client could not send).
    pub fn create_json(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut store = self.store();
        let rt = store
            .resource_type(group, version, plural)
            .ok_or_else(|| ApiError::new(404, "NotFound", plural.to_string()))?;
        store.create(&rt, ns, obj)
    }

    /// Reads a typed object directly; None if absent or not decodable.
    pub fn get<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
    ) -> Option<K> {
        let (g, v, p) = type_of::<K>();
        let store = self.store();
        let rt = store.resource_type(&g, &v, &p)?;
        store
            .get(&rt, ns, name)
            .ok()
            .and_then(|o| serde_json::from_value(o).ok())
    }

    /// Lists typed objects in all namespaces directly.
    pub fn list<K: Resource<DynamicType = ()> + DeserializeOwned>(&self) -> Vec<K> {
        let (g, v, p) = type_of::<K>();
        let store = self.store();
        let Some(rt) = store.resource_type(&g, &v, &p) else {
            return Vec::new();
        };
        let (items, _) = store.list(&rt, None, &Default::default(), &Default::default());
        items
            .into_iter()
            .filter_map(|o| serde_json::from_value(o).ok())
            .collect()
    }

    /// How many pods whose name starts with `prefix` are bound (cheap: no decoding).
    pub fn count_bound_pods(&self, prefix: &str) -> usize {
        let store = self.store();
        let Some(rt) = store.resource_type("", "v1", "pods") else {
            return 0;
        };
        let (items, _) = store.list(&rt, None, &Default::default(), &Default::default());
        items
            .iter()
            .filter(|p| {
                p.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .filter(|p| {
                p.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
            })
            .count()
    }

    /// Deletes a typed object directly.
    pub fn delete<K: Resource<DynamicType = ()>>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (g, v, p) = type_of::<K>();
        let mut store = self.store();
        let rt = store
            .resource_type(&g, &v, &p)
            .ok_or_else(|| ApiError::new(404, "NotFound", p.clone()))?;
        store.delete(&rt, ns, name)
    }

    /// Changes a typed object directly with a JSON function (records a MODIFIED event).
    pub fn mutate<K: Resource<DynamicType = ()>>(
        &self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let (g, v, p) = type_of::<K>();
        let mut store = self.store();
        let rt = store
            .resource_type(&g, &v, &p)
            .ok_or_else(|| ApiError::new(404, "NotFound", p.clone()))?;
        store.mutate(&rt, ns, name, f)
    }

    /// Binds a pod directly, as another scheduler would behind our back.
    pub fn bind(&self, ns: &str, pod: &str, node: &str) -> Result<Value, ApiError> {
        self.store().bind(ns, pod, node)
    }

    /// Makes the next `times` requests `verb resource` (e.g. `create`, `pods/binding`),
    /// optionally only for one object, fail with `code`.
    pub fn fail_next(
        &self,
        verb: &str,
        resource: &str,
        name: Option<(&str, &str)>,
        code: u16,
        times: usize,
    ) {
        if times == 0 {
            return;
        }
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Fault {
                verb: verb.into(),
                resource: resource.into(),
                namespace: name.map(|(ns, _)| ns.to_string()),
                name: name.map(|(_, n)| n.to_string()),
                code,
                remaining: times,
            });
    }

    /// Delays every `verb resource` request (e.g. `create`, `pods/binding`) by `d` before it is served.
    pub fn set_delay(&self, verb: &str, resource: &str, d: Duration) {
        self.shared
            .delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{verb} {resource}"), d);
    }

    /// Makes the next bind of one pod fail with `code` (409 or 404, say) without changing it.
    pub fn inject_bind_error(&self, ns: &str, pod: &str, code: u16) {
        self.fail_next("create", "pods/binding", Some((ns, pod)), code, 1);
    }

    /// How many requests `verb resource` arrived (e.g. `("create", "pods/binding")`, `("watch", "pods")`).
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{verb} {resource}"))
            .copied()
            .unwrap_or(0)
    }

    /// All request counts, keyed `"verb resource"`.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// All request counts keyed `(api group, resource[/subresource], verb)`, for RBAC checks.
    pub fn request_counts_by_group(&self) -> HashMap<(String, String, String), u64> {
        self.shared
            .counts_by_group
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a simulated kubelet: bound pods go Running, then optionally Succeeded.
    pub fn start_kubelet(&self, opts: KubeletOptions) {
        let task = kubelet::spawn(self.shared.clone(), opts);
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Sets a pod's phase directly (Running, Succeeded, Failed).
    pub fn set_pod_phase(&self, ns: &str, pod: &str, phase: &str) -> Result<Value, ApiError> {
        kubelet::set_phase(&self.shared, ns, pod, phase)
    }
}
