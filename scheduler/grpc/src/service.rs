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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pods: 100_000,
            max_updates: 10_000,
        }
    }
}

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
        Some(pb::match_request::Request::Jobspec(text)) => {
            if text.trim().is_empty() {
                Err(BackendError::invalid("jobspec", "is empty"))
            } else {
                Ok(())
            }
        }
        Some(pb::match_request::Request::Pods(group)) => validate_pods(group, limits),
    }
}

fn validate_pods(group: &pb::PodGroup, limits: &Limits) -> Result<(), BackendError> {
    if group.templates.is_empty() {
        return Err(BackendError::invalid("pods.templates", "no pod templates"));
    }
    let mut total: u64 = 0;
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
        if t.node_selector.keys().any(|k| k.trim().is_empty()) {
            return Err(BackendError::invalid(
                at(".node_selector"),
                "empty label key",
            ));
        }
    }
    Ok(())
}

fn validate_updates(req: &pb::UpdateGraphRequest, limits: &Limits) -> Result<(), BackendError> {
    if req.updates.len() > limits.max_updates {
        return Err(BackendError::ResourceExhausted(format!(
            "updates: {} updates in one call; the limit is {}",
            req.updates.len(),
            limits.max_updates
        )));
    }
    for (i, u) in req.updates.iter().enumerate() {
        let at = format!("updates[{i}]");
        match &u.update {
            None => return Err(BackendError::invalid(at, "empty update")),
            Some(pb::graph_update::Update::AddNode(n)) if n.name.trim().is_empty() => {
                return Err(BackendError::invalid(
                    format!("{at}.add_node.name"),
                    "is empty",
                ));
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
        let req = request.into_inner();
        Ok(Response::new(
            checked_match(&*self.backend, &self.limits, req).await?,
        ))
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
    fn too_many_pods_is_resource_exhausted_without_overflow() {
        let limits = Limits {
            max_pods: 10,
            max_updates: 1,
        };
        assert!(validate_match(&pods(vec![worker(10)]), &limits).is_ok());
        let big = pods(vec![worker(u32::MAX), worker(u32::MAX)]);
        assert!(matches!(
            validate_match(&big, &limits),
            Err(BackendError::ResourceExhausted(_))
        ));
    }
}
