//! What the gRPC service needs from whoever owns the graph.
//!
//! Two levels, so that both the standalone matcher and `phalanx run` can
//! serve the same API:
//! - [`Engine`]: the synchronous state machine (graph + matcher + job table).
//!   Wrap it in [`crate::OwnerBackend`] and it runs in one owner thread.
//! - [`Backend`]: the asynchronous interface the tonic service calls. A
//!   scheduler that already has its own owner loop implements it directly and
//!   forwards each call to that loop.
//!
//! Both speak the generated `phalanx.fluxion.v1` messages so there is one
//! contract and no parallel type hierarchy to keep in step.

use std::future::Future;

use phalanx_proto::v1 as pb;

/// Why a request failed; maps one-to-one onto a gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The request is malformed; `path` names the field or jobspec path.
    #[error("{path}: {message}")]
    InvalidArgument {
        /// Field path (e.g. `pods.templates[0].count` or `resources[0].with[1].count`).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// An unknown job or node.
    #[error("{0}")]
    NotFound(String),
    /// The request is larger than the server accepts.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request is well formed but impossible in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The backend is shutting down or otherwise not serving.
    #[error("{0}")]
    Unavailable(String),
    /// A bug: the backend failed in a way the request did not cause.
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// An [`BackendError::InvalidArgument`] at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<BackendError> for tonic::Status {
    fn from(err: BackendError) -> Self {
        let message = err.to_string();
        match err {
            BackendError::InvalidArgument { .. } => tonic::Status::invalid_argument(message),
            BackendError::NotFound(_) => tonic::Status::not_found(message),
            BackendError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            BackendError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            BackendError::Unavailable(_) => tonic::Status::unavailable(message),
            BackendError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// The synchronous graph owner: every method runs on the owner thread, one
/// at a time, in arrival order (reads may overtake queued writes).
///
/// Implementations must leave their state unchanged when they return an
/// error, so a bad request can never corrupt the graph.
pub trait Engine: Send + 'static {
    /// Match a group (allocate, allocate-or-reserve, or satisfiability).
    fn match_group(&mut self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse>;
    /// Release a job or part of it.
    fn cancel(&mut self, req: pb::CancelRequest) -> BackendResult<pb::CancelResponse>;
    /// Add/remove nodes, mark nodes up/down.
    fn update_graph(
        &mut self,
        req: pb::UpdateGraphRequest,
    ) -> BackendResult<pb::UpdateGraphResponse>;
    /// One job.
    fn info(&self, req: pb::InfoRequest) -> BackendResult<pb::InfoResponse>;
    /// Graph and job counts; the owner fills in match counters and latency.
    fn stat(&self) -> BackendResult<pb::StatResponse>;
    /// Per-node resource usage.
    fn resources(&self, req: pb::ResourcesRequest) -> BackendResult<pb::ResourcesResponse>;
    /// Jobs, lowest ids first.
    fn jobs(&self, req: pb::JobsRequest) -> BackendResult<pb::JobsResponse>;
    /// Called by the owner before each request with the graph clock (seconds
    /// since the owner started), so reservations and "now" stay in step.
    fn advance_clock(&mut self, _now: i64) {}
}

/// The asynchronous interface the gRPC service calls.
///
/// Implementations must not hold a lock across an await and must answer
/// reads (`info`, `stat`, `resources`, `jobs`) without waiting for queued
/// matches.
pub trait Backend: Send + Sync + 'static {
    /// See [`Engine::match_group`].
    fn match_group(
        &self,
        req: pb::MatchRequest,
    ) -> impl Future<Output = BackendResult<pb::MatchResponse>> + Send;
    /// See [`Engine::cancel`].
    fn cancel(
        &self,
        req: pb::CancelRequest,
    ) -> impl Future<Output = BackendResult<pb::CancelResponse>> + Send;
    /// See [`Engine::update_graph`].
    fn update_graph(
        &self,
        req: pb::UpdateGraphRequest,
    ) -> impl Future<Output = BackendResult<pb::UpdateGraphResponse>> + Send;
    /// See [`Engine::info`].
    fn info(
        &self,
        req: pb::InfoRequest,
    ) -> impl Future<Output = BackendResult<pb::InfoResponse>> + Send;
    /// See [`Engine::stat`].
    fn stat(&self) -> impl Future<Output = BackendResult<pb::StatResponse>> + Send;
    /// See [`Engine::resources`].
    fn resources(
        &self,
        req: pb::ResourcesRequest,
    ) -> impl Future<Output = BackendResult<pb::ResourcesResponse>> + Send;
    /// See [`Engine::jobs`].
    fn jobs(
        &self,
        req: pb::JobsRequest,
    ) -> impl Future<Output = BackendResult<pb::JobsResponse>> + Send;
    /// Answers as soon as whoever owns the graph is free to answer a read:
    /// the health check polls it, so a graph owner stuck on one request
    /// shows as NOT_SERVING. The default answers at once.
    fn ping(&self) -> impl Future<Output = BackendResult<()>> + Send {
        async { Ok(()) }
    }
}
