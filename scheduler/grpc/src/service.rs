//! The tonic `Fluxion` service: checks what can be checked without the
//! graph, then hands each request to a [`Backend`].

use std::pin::Pin;
use std::sync::Arc;

use phalanx_proto::v1 as pb;
use phalanx_proto::v1::fluxion_server::Fluxion;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::{Backend, BackendError};

/// Limits applied before a request reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most pods (sum of template counts) one Match may ask for.
    pub max_pods: u64,
    /// Most updates in one UpdateGraph call.
    pub max_updates: usize,
    /// Most vertices the AddNodes of one UpdateGraph call may create: the
    /// owner thread builds them in one go, so this bounds one call's work.
    pub max_update_vertices: u64,
    /// Largest jobspec text, in bytes.
    pub max_jobspec_bytes: usize,
    /// Deepest nesting of flow collections (`[`, `{`) in a jobspec; deep
    /// flow nesting is where YAML scanners go quadratic.
    pub max_jobspec_nesting: usize,
    /// Most templates with a node selector in one group: each is matched
    /// with the other nodes masked, which costs a pass over the nodes.
    pub max_selector_templates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pods: 100_000,
            max_updates: 10_000,
            max_update_vertices: 1_000_000,
            max_jobspec_bytes: 64 << 10,
            max_jobspec_nesting: 64,
            max_selector_templates: 1_000,
        }
    }
}

/// Longest node, parent or label name accepted, in bytes (a Kubernetes
/// node name is a DNS subdomain: at most 253).
pub const MAX_NAME_BYTES: usize = 253;
/// Most sockets one AddNode may give a node.
pub const MAX_SOCKETS: u32 = 64;
/// Most cores per socket one AddNode may give.
pub const MAX_CORES_PER_SOCKET: u32 = 4096;
/// Most GPUs per socket one AddNode may give.
pub const MAX_GPUS_PER_SOCKET: u32 = 1024;
/// Largest memory pool per socket, in the graph's memory unit (2^32 GB is
/// 4 EB): small enough that no sum over a graph of bounded size can wrap.
pub const MAX_MEMORY_PER_SOCKET: u64 = 1 << 32;

/// The gRPC service over a backend.
pub struct FluxionService<B> {
    backend: Arc<B>,
    limits: Limits,
}

/// Match after the structural checks; shared by the unary call and sessions.
async fn checked_match<B: Backend>(
    backend: &B,
    limits: &Limits,
    req: pb::MatchRequest,
) -> Result<pb::MatchResponse, BackendError> {
    validate_match(&req, limits)?;
    backend.match_group(req).await
}

/// Cancel after the structural checks; shared by the unary call and sessions.
async fn checked_cancel<B: Backend>(
    backend: &B,
    req: pb::CancelRequest,
) -> Result<pb::CancelResponse, BackendError> {
    require_job_id(req.job_id)?;
    backend.cancel(req).await
}

/// Answers one session request; a failure is an answer, not the end.
async fn session_step<B: Backend>(
    backend: &B,
    limits: &Limits,
    req: pb::SessionRequest,
) -> pb::SessionResponse {
    use pb::session_request::Request as In;
    use pb::session_response::Response as Out;
    let out = match req.request {
        Some(In::Match(m)) => checked_match(backend, limits, m).await.map(Out::Match),
        Some(In::Cancel(c)) => checked_cancel(backend, c).await.map(Out::Cancel),
        None => Err(BackendError::invalid("request", "give `match` or `cancel`")),
    };
    let response = out.unwrap_or_else(|e| {
        let status = Status::from(e);
        Out::Error(pb::SessionError {
            code: status.code() as i32,
            message: status.message().to_owned(),
        })
    });
    pb::SessionResponse {
        response: Some(response),
    }
}

impl<B> FluxionService<B> {
    /// A service that forwards to `backend` after checking `limits`.
    pub fn new(backend: Arc<B>, limits: Limits) -> Self {
        Self { backend, limits }
    }
}

/// Structural checks of a Match request; semantic ones (does the jobspec
/// parse, does a node label exist) belong to the backend.
pub fn validate_match(req: &pb::MatchRequest, limits: &Limits) -> Result<(), BackendError> {
    if pb::Operation::try_from(req.operation).is_err() {
        return Err(BackendError::invalid(
            "operation",
            format!("unknown operation {}", req.operation),
        ));
    }
    match &req.request {
        None => Err(BackendError::invalid(
            "request",
            "give either `jobspec` or `pods`",
        )),
        Some(pb::match_request::Request::Jobspec(text)) => validate_jobspec_text(text, limits),
        Some(pb::match_request::Request::Pods(group)) => validate_pods(group, limits),
    }
}

fn validate_pods(group: &pb::PodGroup, limits: &Limits) -> Result<(), BackendError> {
    if group.templates.is_empty() {
        return Err(BackendError::invalid("pods.templates", "no pod templates"));
    }
    let mut total: u64 = 0;
    let mut selected = 0usize;
    for (i, t) in group.templates.iter().enumerate() {
        let at = |field: &str| format!("pods.templates[{i}]{field}");
        total = total.saturating_add(u64::from(t.count.max(1)));
        if total > limits.max_pods {
            return Err(BackendError::ResourceExhausted(format!(
                "{}: the group asks for more than {} pods",
                at(".count"),
                limits.max_pods
            )));
        }
        let asks_something = t.cpu_millis > 0
            || t.memory_bytes > 0
            || t.gpus > 0
            || t.extended.values().any(|&v| v > 0);
        if !asks_something {
            return Err(BackendError::invalid(
                at(""),
                "requests no resources (set cpu_millis, memory_bytes, gpus or extended)",
            ));
        }
        if let Some(k) = t.extended.keys().find(|k| k.trim().is_empty()) {
            return Err(BackendError::invalid(
                at(".extended"),
                format!("empty resource name {k:?}"),
            ));
        }
        for k in t.extended.keys() {
            if let Some(why) = structural(k) {
                return Err(BackendError::invalid(
                    at(&format!(".extended[{k:?}]")),
                    why.to_owned(),
                ));
            }
            check_label(&at(".extended"), k)?;
        }
        if !t.node_selector.is_empty() {
            selected += 1;
            if selected > limits.max_selector_templates {
                return Err(BackendError::ResourceExhausted(format!(
                    "{}: more than {} templates with a node selector in one group",
                    at(".node_selector"),
                    limits.max_selector_templates
                )));
            }
        }
        if t.node_selector.keys().any(|k| k.trim().is_empty()) {
            return Err(BackendError::invalid(
                at(".node_selector"),
                "empty label key",
            ));
        }
    }
    Ok(())
}

/// Size and nesting of a jobspec text, checked on the RPC thread so a
/// hostile jobspec never reaches the graph owner's parser.
fn validate_jobspec_text(text: &str, limits: &Limits) -> Result<(), BackendError> {
    if text.trim().is_empty() {
        return Err(BackendError::invalid("jobspec", "is empty"));
    }
    if text.len() > limits.max_jobspec_bytes {
        return Err(BackendError::ResourceExhausted(format!(
            "jobspec: {} bytes; the limit is {} bytes",
            text.len(),
            limits.max_jobspec_bytes
        )));
    }
    fluxion_core::flow_nesting::check(text, limits.max_jobspec_nesting)
        .map_err(|e| BackendError::invalid("jobspec", e.to_string()))?;
    Ok(())
}

/// A name that is shown in tables and used as a path component: not empty,
/// at most [`MAX_NAME_BYTES`], no `/` and no control characters (NUL,
/// newline, ...).
pub fn check_name(path: &str, name: &str) -> Result<(), BackendError> {
    if name.trim().is_empty() {
        return Err(BackendError::invalid(path, "is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(BackendError::invalid(
            path,
            format!("{} bytes; at most {MAX_NAME_BYTES}", name.len()),
        ));
    }
    if let Some(c) = name.chars().find(|&c| c == '/' || c.is_control()) {
        return Err(BackendError::invalid(
            path,
            format!("{name:?} contains {c:?}; names may not contain '/' or control characters"),
        ));
    }
    Ok(())
}

/// A label key or value: bounded, no control characters (values may be empty).
fn check_label(path: &str, text: &str) -> Result<(), BackendError> {
    if text.len() > MAX_NAME_BYTES {
        return Err(BackendError::invalid(
            path,
            format!("{} bytes; at most {MAX_NAME_BYTES}", text.len()),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(BackendError::invalid(
            path,
            format!("{text:?} contains {c:?}; control characters are not allowed"),
        ));
    }
    Ok(())
}

/// Vertices an AddNode creates, or `None` if the count overflows u64:
/// the node, and per socket the socket, its cores, GPUs and memory pool.
pub fn add_node_vertices(n: &pb::AddNode) -> Option<u64> {
    let per_socket = 1u64
        .checked_add(u64::from(n.cores_per_socket))?
        .checked_add(u64::from(n.gpus_per_socket))?
        .checked_add(u64::from(n.memory_per_socket > 0))?;
    u64::from(n.sockets).checked_mul(per_socket)?.checked_add(1)
}

/// The shape of one AddNode: names and per-node sizes.
pub fn validate_add_node(n: &pb::AddNode, at: &str) -> Result<(), BackendError> {
    check_name(&format!("{at}.name"), &n.name)?;
    if !n.parent.is_empty() {
        check_name(&format!("{at}.parent"), &n.parent)?;
    }
    for (field, value, max) in [
        ("sockets", n.sockets, MAX_SOCKETS),
        ("cores_per_socket", n.cores_per_socket, MAX_CORES_PER_SOCKET),
        ("gpus_per_socket", n.gpus_per_socket, MAX_GPUS_PER_SOCKET),
    ] {
        if value > max {
            return Err(BackendError::invalid(
                format!("{at}.{field}"),
                format!("{value}; at most {max}"),
            ));
        }
    }
    if n.memory_per_socket > MAX_MEMORY_PER_SOCKET {
        return Err(BackendError::invalid(
            format!("{at}.memory_per_socket"),
            format!(
                "{}; at most {MAX_MEMORY_PER_SOCKET} (in the graph's memory unit)",
                n.memory_per_socket
            ),
        ));
    }
    for (k, v) in &n.labels {
        check_label(&format!("{at}.labels"), k)?;
        if k.trim().is_empty() {
            return Err(BackendError::invalid(
                format!("{at}.labels"),
                "empty label key",
            ));
        }
        check_label(&format!("{at}.labels[{k:?}]"), v)?;
    }
    Ok(())
}

/// Why `kind` cannot be asked for as an extended resource, if it cannot.
fn structural(kind: &str) -> Option<&'static str> {
    match kind {
        "core" | "cpu" => Some("ask for cores with cpu_millis, not as an extended resource"),
        "gpu" | "nvidia.com/gpu" => Some("ask for GPUs with gpus, not as an extended resource"),
        "memory" => Some("ask for memory with memory_bytes, not as an extended resource"),
        "cluster" | "zone" | "rack" | "node" | "socket" | "numa" | "pu" | "slot" => {
            Some("a structural type (a container of resources), not a resource a pod can consume")
        }
        _ => None,
    }
}

fn validate_updates(req: &pb::UpdateGraphRequest, limits: &Limits) -> Result<(), BackendError> {
    if req.updates.len() > limits.max_updates {
        return Err(BackendError::ResourceExhausted(format!(
            "updates: {} updates in one call; the limit is {}",
            req.updates.len(),
            limits.max_updates
        )));
    }
    let mut vertices: u64 = 0;
    for (i, u) in req.updates.iter().enumerate() {
        let at = format!("updates[{i}]");
        match &u.update {
            None => return Err(BackendError::invalid(at, "empty update")),
            Some(pb::graph_update::Update::AddNode(n)) => {
                let at = format!("{at}.add_node");
                validate_add_node(n, &at)?;
                vertices = add_node_vertices(n)
                    .and_then(|v| vertices.checked_add(v))
                    .unwrap_or(u64::MAX);
                if vertices > limits.max_update_vertices {
                    return Err(BackendError::ResourceExhausted(format!(
                        "{at}: the call's AddNodes up to here create {vertices} vertices; \
                         one UpdateGraph may create at most {} (send smaller batches)",
                        limits.max_update_vertices
                    )));
                }
            }
            Some(pb::graph_update::Update::RemoveNode(n)) if n.trim().is_empty() => {
                return Err(BackendError::invalid(
                    format!("{at}.remove_node"),
                    "is empty",
                ));
            }
            Some(pb::graph_update::Update::SetState(s)) if s.node.trim().is_empty() => {
                return Err(BackendError::invalid(
                    format!("{at}.set_state.node"),
                    "is empty",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded(
        "the deadline passed before the match was made; nothing was allocated",
    )
}

/// The latest moment a match may be committed for a call with a
/// `grpc-timeout`: the deadline less a margin for the time the request
/// spent on the way (the client's clock started first), a fifth of the
/// timeout and at most 50 ms.
pub fn commit_deadline(
    metadata: &tonic::metadata::MetadataMap,
    received: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let timeout = parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)?;
    let margin = (timeout / 2).min(std::time::Duration::from_millis(100));
    // A deadline past what the clock can hold is no deadline.
    received.checked_add(timeout - margin)
}

/// A `grpc-timeout` header value: at most 8 digits and a unit (H, M, S, m,
/// u, n), as the gRPC HTTP/2 protocol defines it; `None` if malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

fn require_job_id(job_id: u64) -> Result<(), BackendError> {
    if job_id == 0 {
        Err(BackendError::invalid(
            "job_id",
            "must be set (job ids start at 1)",
        ))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl<B: Backend> Fluxion for FluxionService<B> {
    async fn r#match(
        &self,
        request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let deadline = commit_deadline(request.metadata(), tokio::time::Instant::now());
        let req = request.into_inner();
        let matched = checked_match(&*self.backend, &self.limits, req);
        let Some(deadline) = deadline else {
            return Ok(Response::new(matched.await?));
        };
        // Past the deadline the client has given up: a match still queued
        // or running is dropped (the backend rolls back what it made), and
        // one answered too late is cancelled here, never kept.
        let resp = tokio::time::timeout_at(deadline, matched)
            .await
            .map_err(|_| deadline_exceeded())??;
        if tokio::time::Instant::now() >= deadline {
            if resp.job_id != 0 {
                // On its own task: this call may be dropped any moment now
                // (its deadline), and the roll-back must not go with it.
                let backend = self.backend.clone();
                let job_id = resp.job_id;
                tokio::spawn(async move {
                    let undo = pb::CancelRequest {
                        job_id,
                        ..Default::default()
                    };
                    if let Err(e) = backend.cancel(undo).await {
                        tracing::error!(job_id, error = %e, "rolling back a late match failed");
                    }
                });
            }
            return Err(deadline_exceeded());
        }
        Ok(Response::new(resp))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        Ok(Response::new(
            checked_cancel(&*self.backend, request.into_inner()).await?,
        ))
    }

    async fn info(
        &self,
        request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let req = request.into_inner();
        require_job_id(req.job_id)?;
        Ok(Response::new(self.backend.info(req).await?))
    }

    async fn stat(
        &self,
        _request: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        Ok(Response::new(self.backend.stat().await?))
    }

    async fn resources(
        &self,
        request: Request<pb::ResourcesRequest>,
    ) -> Result<Response<pb::ResourcesResponse>, Status> {
        Ok(Response::new(
            self.backend.resources(request.into_inner()).await?,
        ))
    }

    async fn jobs(
        &self,
        request: Request<pb::JobsRequest>,
    ) -> Result<Response<pb::JobsResponse>, Status> {
        let req = request.into_inner();
        if let Some(bad) = req
            .states
            .iter()
            .find(|&&s| pb::JobState::try_from(s).is_err())
        {
            return Err(BackendError::invalid("states", format!("unknown job state {bad}")).into());
        }
        Ok(Response::new(self.backend.jobs(req).await?))
    }

    async fn update_graph(
        &self,
        request: Request<pb::UpdateGraphRequest>,
    ) -> Result<Response<pb::UpdateGraphResponse>, Status> {
        let req = request.into_inner();
        validate_updates(&req, &self.limits)?;
        Ok(Response::new(self.backend.update_graph(req).await?))
    }

    type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

    async fn session(
        &self,
        request: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let inbound = request.into_inner();
        let state = Some((inbound, self.backend.clone(), self.limits));
        // The answers are produced as the response body is polled: each
        // poll reads the next request and answers it, so answers come back
        // in request order with no task or queue between the HTTP/2 stream
        // and the backend, and a client that stops reading stops being
        // read (flow control pushes back). A broken request stream ends
        // the session with its error.
        let answers = futures::stream::unfold(state, |state| async move {
            let (mut inbound, backend, limits) = state?;
            match inbound.message().await {
                Ok(Some(req)) => {
                    let answer = session_step(&*backend, &limits, req).await;
                    Some((Ok(answer), Some((inbound, backend, limits))))
                }
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(templates: Vec<pb::PodTemplate>) -> pb::MatchRequest {
        pb::MatchRequest {
            request: Some(pb::match_request::Request::Pods(pb::PodGroup { templates })),
            ..Default::default()
        }
    }

    fn worker(count: u32) -> pb::PodTemplate {
        pb::PodTemplate {
            count,
            cpu_millis: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn rejects_structurally_bad_matches_with_paths() {
        let limits = Limits::default();
        let err = |r: pb::MatchRequest| validate_match(&r, &limits).unwrap_err();
        assert!(matches!(err(pb::MatchRequest::default()),
            BackendError::InvalidArgument { path, .. } if path == "request"));
        assert!(matches!(err(pods(vec![])),
            BackendError::InvalidArgument { path, .. } if path == "pods.templates"));
        let empty = pb::PodTemplate {
            count: 2,
            ..Default::default()
        };
        assert!(matches!(err(pods(vec![worker(1), empty])),
            BackendError::InvalidArgument { path, .. } if path == "pods.templates[1]"));
        let mut bad_op = pods(vec![worker(1)]);
        bad_op.operation = 42;
        assert!(matches!(err(bad_op),
            BackendError::InvalidArgument { path, .. } if path == "operation"));
    }

    #[test]
    fn node_selector_templates_are_bounded() {
        let limits = Limits {
            max_selector_templates: 2,
            ..Limits::default()
        };
        let mut t = worker(1);
        t.node_selector.insert("zone".into(), "a".into());
        assert!(validate_match(&pods(vec![t.clone(), worker(1), t.clone()]), &limits).is_ok());
        let err = validate_match(&pods(vec![t.clone(), t.clone(), t]), &limits).unwrap_err();
        assert!(
            matches!(&err, BackendError::ResourceExhausted(m)
                if m.starts_with("pods.templates[2].node_selector")),
            "{err:?}"
        );
    }

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_says() {
        use std::time::Duration;
        assert_eq!(parse_grpc_timeout("5m"), Some(Duration::from_millis(5)));
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "5", "5x", "123456789m", "-5m", "5 m", "5\u{e9}"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn too_many_pods_is_resource_exhausted_without_overflow() {
        let limits = Limits {
            max_pods: 10,
            ..Limits::default()
        };
        assert!(validate_match(&pods(vec![worker(10)]), &limits).is_ok());
        let big = pods(vec![worker(u32::MAX), worker(u32::MAX)]);
        assert!(matches!(
            validate_match(&big, &limits),
            Err(BackendError::ResourceExhausted(_))
        ));
    }
}
