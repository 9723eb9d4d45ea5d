//! The owner thread: one thread owns the [`Engine`] and applies requests
//! in arrival order; RPC handlers talk to it through queues.
//!
//! Why a thread and two queues:
//! - The engine is synchronous and CPU-bound; a dedicated OS thread keeps
//!   matches off the tokio workers that run HTTP/2 and never needs a lock,
//!   so no lock can be held across an await.
//! - Writes (match, cancel, update) go through a bounded queue: arrival
//!   order is application order, and a full queue pushes back on clients.
//! - Reads (info, stat, resources, jobs) go through their own queue that the
//!   owner always drains first (a biased select). A read therefore waits for
//!   at most the one write in progress, never for the writes queued behind
//!   it, and still sees every write its caller has already seen complete
//!   (read-your-writes), which a periodically published snapshot would not
//!   give. Publishing a full snapshot after every mutation was rejected
//!   because copying a 1,000-node usage table per match costs more than the
//!   match itself.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use phalanx_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, BackendError, BackendResult, Engine};

/// Matches kept for the latency summary in `Stat`.
const LATENCY_WINDOW: usize = 4096;
/// Writes that may wait in the queue before senders are made to wait.
const WRITE_QUEUE: usize = 1024;
/// Reads that may wait in the queue before senders are made to wait.
const READ_QUEUE: usize = 1024;

/// What the owner thread owns: the engine plus counters the engine does not
/// need to know about.
pub struct OwnerState<E> {
    engine: E,
    started: Instant,
    succeeded: u64,
    failed: u64,
    latencies: VecDeque<u64>,
}

impl<E: Engine> OwnerState<E> {
    fn new(engine: E) -> Self {
        Self {
            engine,
            started: Instant::now(),
            succeeded: 0,
            failed: 0,
            latencies: VecDeque::with_capacity(LATENCY_WINDOW),
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)
    }

    fn tick(&mut self) {
        let now = self.now();
        self.engine.advance_clock(now);
    }

    fn match_group(&mut self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse> {
        self.tick();
        let t0 = Instant::now();
        let result = self.engine.match_group(req);
        let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut resp = result?;
        if resp.match_micros == 0 {
            resp.match_micros = micros;
        }
        let placed = matches!(
            pb::MatchResult::try_from(resp.result),
            Ok(pb::MatchResult::Allocated | pb::MatchResult::Reserved)
        );
        if placed {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(resp.match_micros);
        Ok(resp)
    }

    /// Cancels a job whose match was never delivered.
    fn roll_back(&mut self, job_id: u64) {
        if job_id == 0 {
            return;
        }
        let undo = pb::CancelRequest {
            job_id,
            ..Default::default()
        };
        match guard(|| self.engine.cancel(undo)) {
            Ok(_) => tracing::info!(
                job_id,
                "match not delivered (deadline or disconnect): rolled back"
            ),
            Err(e) => {
                tracing::error!(job_id, error = %e, "rolling back an undelivered match failed")
            }
        }
    }

    fn stat(&self) -> BackendResult<pb::StatResponse> {
        let mut resp = self.engine.stat()?;
        resp.matches_succeeded = self.succeeded;
        resp.matches_failed = self.failed;
        resp.match_latency = Some(latency_summary(self.latencies.iter().copied()));
        resp.now = self.now();
        Ok(resp)
    }
}

/// Summary of a window of latencies (microseconds).
pub fn latency_summary(samples: impl Iterator<Item = u64>) -> pb::LatencySummary {
    let mut v: Vec<u64> = samples.collect();
    if v.is_empty() {
        return pb::LatencySummary::default();
    }
    v.sort_unstable();
    let n = v.len();
    let pick = |q: f64| {
        // Nearest-rank quantile: the smallest sample with at least q of the
        // samples at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        v[rank - 1]
    };
    pb::LatencySummary {
        count: n as u64,
        min_micros: v[0],
        max_micros: v[n - 1],
        mean_micros: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
        p50_micros: pick(0.50),
        p99_micros: pick(0.99),
    }
}

type WriteJob<E> = Box<dyn FnOnce(&mut OwnerState<E>) + Send>;
type ReadJob<E> = Box<dyn FnOnce(&OwnerState<E>) + Send>;

/// A [`Backend`] that runs an [`Engine`] on its own owner thread.
///
/// Dropping every clone of the backend (and so every queue sender) ends the
/// thread after it has answered what was already queued.
pub struct OwnerBackend<E> {
    writes: mpsc::Sender<WriteJob<E>>,
    reads: mpsc::Sender<ReadJob<E>>,
    _engine: PhantomData<fn() -> E>,
}

impl<E> Clone for OwnerBackend<E> {
    fn clone(&self) -> Self {
        Self {
            writes: self.writes.clone(),
            reads: self.reads.clone(),
            _engine: PhantomData,
        }
    }
}

impl<E: Engine> OwnerBackend<E> {
    /// Starts the owner thread with `engine`.
    pub fn spawn(engine: E) -> std::io::Result<Self> {
        let (writes, mut write_rx) = mpsc::channel::<WriteJob<E>>(WRITE_QUEUE);
        let (reads, mut read_rx) = mpsc::channel::<ReadJob<E>>(READ_QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        std::thread::Builder::new()
            .name("phalanx-graph-owner".into())
            .spawn(move || {
                let mut state = OwnerState::new(engine);
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            biased;
                            Some(job) = read_rx.recv() => job(&state),
                            Some(job) = write_rx.recv() => job(&mut state),
                            else => break,
                        }
                    }
                });
            })?;
        Ok(Self {
            writes,
            reads,
            _engine: PhantomData,
        })
    }

    async fn write<T, F>(&self, f: F) -> BackendResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut OwnerState<E>) -> BackendResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob<E> = Box::new(move |state| {
            // A caller that has gone (deadline passed, client disconnected)
            // was told the call failed: it must not take effect.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(guard(|| f(state)));
        });
        self.writes.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A match whose caller goes away before it has the answer is rolled
    /// back, so no job is held that no client knows about: the owner
    /// cancels it if the answer cannot be delivered, and [`PendingMatch`]
    /// if the answer arrived but the call was dropped before returning it.
    async fn write_match(&self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse> {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob<E> = Box::new(move |state| {
            if tx.is_closed() {
                return;
            }
            let result = guard(|| state.match_group(req));
            if let Err(Ok(resp)) = tx.send(result) {
                state.roll_back(resp.job_id);
            }
        });
        self.writes.send(job).await.map_err(|_| gone())?;
        let mut pending = PendingMatch {
            rx: Some(rx),
            writes: self.writes.clone(),
        };
        let result = (&mut pending).await;
        result.map_err(|_| gone())?
    }

    async fn read<T, F>(&self, f: F) -> BackendResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnerState<E>) -> BackendResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob<E> = Box::new(move |state| {
            // A caller that has gone (deadline, disconnect, an abandoned
            // health ping) needs no answer: skip the work.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(guard(|| f(state)));
        });
        self.reads.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

type MatchAnswer = BackendResult<pb::MatchResponse>;

/// The wait for a match's answer. Dropped unfinished (the call's deadline
/// fired or its client went away), it rolls back a match that was made.
struct PendingMatch<E: Engine> {
    rx: Option<oneshot::Receiver<MatchAnswer>>,
    writes: mpsc::Sender<WriteJob<E>>,
}

impl<E: Engine> std::future::Future for PendingMatch<E> {
    type Output = Result<MatchAnswer, oneshot::error::RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(rx) = self.rx.as_mut() else {
            return std::task::Poll::Pending;
        };
        let out = std::pin::Pin::new(rx).poll(cx);
        if out.is_ready() {
            self.rx = None;
        }
        out
    }
}

impl<E: Engine> Drop for PendingMatch<E> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // After close() the owner's send fails (and it rolls back itself);
        // a value sent before is still there to take.
        rx.close();
        let Ok(Ok(resp)) = rx.try_recv() else {
            return;
        };
        let job_id = resp.job_id;
        if job_id == 0 {
            return;
        }
        let undo: WriteJob<E> = Box::new(move |state| state.roll_back(job_id));
        match self.writes.try_send(undo) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(undo)) => {
                // Drop cannot wait for room in the queue; a task can.
                let writes = self.writes.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = writes.send(undo).await;
                    });
                } else {
                    tracing::error!(job_id, "cannot roll back an undelivered match: no runtime");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

fn gone() -> BackendError {
    BackendError::Unavailable("the graph owner has stopped".into())
}

/// Runs one engine call, turning a panic into an INTERNAL error so a bug
/// triggered by one request does not take the server down.
fn guard<T>(f: impl FnOnce() -> BackendResult<T>) -> BackendResult<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "graph engine panicked");
            Err(BackendError::Internal(format!("engine panicked: {what}")))
        }
    }
}

impl<E: Engine> Backend for OwnerBackend<E> {
    async fn match_group(&self, req: pb::MatchRequest) -> BackendResult<pb::MatchResponse> {
        self.write_match(req).await
    }

    async fn cancel(&self, req: pb::CancelRequest) -> BackendResult<pb::CancelResponse> {
        self.write(move |s| {
            s.tick();
            s.engine.cancel(req)
        })
        .await
    }

    async fn update_graph(
        &self,
        req: pb::UpdateGraphRequest,
    ) -> BackendResult<pb::UpdateGraphResponse> {
        self.write(move |s| {
            s.tick();
            s.engine.update_graph(req)
        })
        .await
    }

    async fn info(&self, req: pb::InfoRequest) -> BackendResult<pb::InfoResponse> {
        self.read(move |s| s.engine.info(req)).await
    }

    async fn stat(&self) -> BackendResult<pb::StatResponse> {
        self.read(|s| s.stat()).await
    }

    async fn resources(&self, req: pb::ResourcesRequest) -> BackendResult<pb::ResourcesResponse> {
        self.read(move |s| s.engine.resources(req)).await
    }

    async fn jobs(&self, req: pb::JobsRequest) -> BackendResult<pb::JobsResponse> {
        self.read(move |s| s.engine.jobs(req)).await
    }

    async fn ping(&self) -> BackendResult<()> {
        self.read(|_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_summary_uses_nearest_rank() {
        let s = latency_summary(1..=100);
        assert_eq!((s.count, s.min_micros, s.max_micros), (100, 1, 100));
        assert_eq!((s.p50_micros, s.p99_micros), (50, 99));
        assert!((s.mean_micros - 50.5).abs() < 1e-9);
        assert_eq!(latency_summary(std::iter::empty()).count, 0);
        assert_eq!(latency_summary([7].into_iter()).p99_micros, 7);
    }
}
