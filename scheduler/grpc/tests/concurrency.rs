//! 64 concurrent clients doing random match/cancel sequences: no vertex is
//! ever handed to two jobs, reads stay consistent while writes are queued,
//! and when everyone has cancelled the graph is empty again.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use fluxion_core::generate::ClusterShape;
use phalanx_grpc::ServerConfig;
use phalanx_proto::v1 as pb;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLIENTS: u64 = 64;
const OPS_PER_CLIENT: usize = 24;

/// Vertex path -> job holding it, as observed by clients.
type Holders = Arc<Mutex<HashMap<String, u64>>>;

fn claim(holders: &Holders, job: u64, pods: &[pb::PodPlacement]) {
    let mut h = holders.lock().unwrap();
    for v in pods.iter().flat_map(|p| &p.vertices) {
        if let Some(other) = h.insert(v.clone(), job) {
            panic!("double allocation: {v} given to job {job} while job {other} holds it");
        }
    }
}

fn unclaim(holders: &Holders, pods: &[pb::PodPlacement]) {
    let mut h = holders.lock().unwrap();
    for v in pods.iter().flat_map(|p| &p.vertices) {
        h.remove(v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_match_cancel_from_64_clients_leaves_an_empty_graph() {
    let shape = ClusterShape {
        nodes: 16,
        nodes_per_rack: 4,
        sockets: 2,
        cores_per_socket: 4,
        gpus_per_socket: 1,
        memory_gib_per_socket: 0,
        per_node_ids: false,
    };
    let server = TestServer::start(engine(&shape), ServerConfig::default()).await;
    let holders: Holders = Arc::default();
    let stop_reader = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // A reader checking every node's books while the writers run.
    let reader = {
        let mut c = server.client().await;
        let stop = stop_reader.clone();
        tokio::spawn(async move {
            let mut checks = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .resources(pb::ResourcesRequest::default())
                    .await
                    .unwrap()
                    .into_inner();
                for n in &r.nodes {
                    for rc in &n.resources {
                        assert_eq!(rc.free + rc.allocated, rc.total, "{}: {rc:?}", n.name);
                    }
                }
                checks += 1;
            }
            checks
        })
    };

    let mut tasks = Vec::new();
    for seed in 0..CLIENTS {
        let addr = server.addr.clone();
        let holders = holders.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut c = phalanx_grpc::connect(&addr, None).await.unwrap();
            // job id -> its current placement
            let mut mine: HashMap<u64, Vec<pb::PodPlacement>> = HashMap::new();
            let mut placed = 0u32;
            for _ in 0..OPS_PER_CLIENT {
                let roll = rng.random_range(0..10);
                if roll < 5 || mine.is_empty() {
                    let n = rng.random_range(1..=4);
                    let millis = rng.random_range(1..=3) * 1000;
                    let gpus = u32::from(rng.random_range(0..4) == 0);
                    let r = c.r#match(pods(n, millis, gpus)).await.unwrap().into_inner();
                    if r.result == pb::MatchResult::Allocated as i32 {
                        assert_eq!(r.pods.len(), n as usize);
                        claim(&holders, r.job_id, &r.pods);
                        mine.insert(r.job_id, r.pods);
                        placed += 1;
                    } else {
                        assert_eq!(r.result, pb::MatchResult::Busy as i32, "{r:?}");
                    }
                } else if roll < 8 {
                    let &job = mine.keys().next().unwrap();
                    let placement = mine.remove(&job).unwrap();
                    // Forget the vertices before they are released, so a
                    // new holder can never be seen while we still claim them.
                    unclaim(&holders, &placement);
                    let r = c
                        .cancel(pb::CancelRequest {
                            job_id: job,
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(r.job_removed);
                } else {
                    // Partial cancel of the first pod left (by its placement index,
                    // which it keeps across partial cancels); pods keep their indices
                    // in the reply of Info, which is the new truth.
                    let &job = mine.keys().next().unwrap();
                    let placement = mine.get(&job).unwrap().clone();
                    unclaim(&holders, &placement[..1]);
                    let r = c
                        .cancel(pb::CancelRequest {
                            job_id: job,
                            pods: vec![placement[0].index],
                            nodes: vec![],
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    if r.job_removed {
                        mine.remove(&job);
                    } else {
                        let info = c
                            .info(pb::InfoRequest { job_id: job })
                            .await
                            .unwrap()
                            .into_inner();
                        let pods = info.job.unwrap().pods;
                        assert_eq!(pods.len(), placement.len() - 1);
                        assert_eq!(pods[..], placement[1..]);
                        mine.insert(job, pods);
                    }
                }
            }
            for (job, placement) in mine {
                unclaim(&holders, &placement);
                c.cancel(pb::CancelRequest {
                    job_id: job,
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            placed
        }));
    }
    let mut placed = 0;
    for t in tasks {
        placed += t.await.unwrap();
    }
    stop_reader.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = reader.await.unwrap();
    assert!(
        placed > CLIENTS as u32,
        "the run exercised the matcher ({placed} placements)"
    );
    assert!(checks > 0);

    let mut c = server.client().await;
    let r = c
        .resources(pb::ResourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    for t in &r.totals {
        assert_eq!((t.allocated, t.free), (0, t.total), "{t:?}");
    }
    assert!(r.nodes.iter().all(|n| n.jobs.is_empty()));
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(jobs.jobs.is_empty(), "{:?}", jobs.jobs);
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.jobs_allocated, stat.jobs_reserved), (0, 0));
    assert!(holders.lock().unwrap().is_empty());
}
