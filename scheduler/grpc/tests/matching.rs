//! Match, Cancel, Info and Jobs against a real server with the fluxion-core matcher.

mod common;

use common::*;
use phalanx_grpc::ServerConfig;
use phalanx_proto::v1 as pb;
use tonic::Code;

const JOBSPEC: &str = r#"
version: 9999
resources:
  - type: node
    count: 2
    with:
      - type: slot
        count: 1
        label: task
        with:
          - type: core
            count: 2
attributes:
  system:
    duration: 3600
tasks:
  - command: [app]
    slot: task
    count: {per_slot: 1}
"#;

#[tokio::test]
async fn pods_are_placed_and_cancelled_in_parts() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let mut req = pods(6, 1500, 0); // 2 cores each
    req.name = "default/mpi-a".into();
    let resp = c.r#match(req).await.unwrap().into_inner();
    assert_eq!(resp.result, pb::MatchResult::Allocated as i32, "{resp:?}");
    assert!(resp.job_id > 0);
    assert_eq!(resp.pods.len(), 6);
    for (i, p) in resp.pods.iter().enumerate() {
        assert_eq!(p.index as usize, i);
        assert_eq!(p.template, "worker");
        assert_eq!(p.vertices.len(), 2, "{p:?}");
        for v in &p.vertices {
            assert!(v.contains(&format!("/{}/", p.node)), "{v} under {}", p.node);
            assert!(v.rsplit('/').next().unwrap().starts_with("core"), "{v}");
        }
    }
    let all: std::collections::HashSet<&String> =
        resp.pods.iter().flat_map(|p| &p.vertices).collect();
    assert_eq!(all.len(), 12, "no core handed out twice");
    assert_eq!(allocated(&mut c, "core").await, 12);

    let info = c
        .info(pb::InfoRequest {
            job_id: resp.job_id,
        })
        .await
        .unwrap()
        .into_inner();
    let job = info.job.unwrap();
    assert_eq!((job.name.as_str(), job.npods), ("default/mpi-a", 6));
    assert_eq!(job.state, pb::JobState::Allocated as i32);
    assert_eq!(job.nnodes as usize, job.nodes.len());
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1);
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.jobs_allocated, stat.matches_succeeded), (1, 1));
    assert_eq!(stat.match_latency.unwrap().count, 1);

    // Partial cancel: pod 0, then every pod on the node of the last pod.
    let last_node = resp.pods[5].node.clone();
    let on_last = resp.pods.iter().filter(|p| p.node == last_node).count();
    let r = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            pods: vec![0],
            nodes: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.job_removed, r.released_pods), (false, 1));
    assert_eq!(allocated(&mut c, "core").await, 10);
    let r = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            pods: vec![],
            nodes: vec![last_node.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.job_removed);
    let remaining = 5 - on_last + usize::from(resp.pods[0].node == last_node);
    let job = c
        .info(pb::InfoRequest {
            job_id: resp.job_id,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.npods as usize, remaining);
    assert!(job.pods.iter().all(|p| p.node != last_node));
    assert_eq!(allocated(&mut c, "core").await, 2 * remaining as u64);

    // Bad partial cancels change nothing.
    let e = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            pods: vec![99],
            nodes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("pods[0]"));
    // Pods are named by their placement index, which survives partial
    // cancels: pod 0 is gone, and the pods left keep their indices.
    let e = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            pods: vec![0],
            nodes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(job.pods.iter().all(|p| p.index > 0 && p.index < 6));
    let e = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            pods: vec![],
            nodes: vec!["nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(allocated(&mut c, "core").await, 2 * remaining as u64);

    let r = c
        .cancel(pb::CancelRequest {
            job_id: resp.job_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.job_removed);
    assert_eq!(allocated(&mut c, "core").await, 0);
    let e = c
        .info(pb::InfoRequest {
            job_id: resp.job_id,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn busy_and_unsatisfiable_are_results_with_reasons() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    // 3 GPUs per pod; every socket has 1.
    let r = c.r#match(pods(1, 1000, 3)).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Unsatisfiable as i32, "{r:?}");
    assert!(
        r.reason.contains("needs 3 gpu per pod") && r.reason.contains("has 1"),
        "{}",
        r.reason
    );
    assert_eq!(r.job_id, 0);

    // Fill the graph (8 sockets x 4 cores), then ask again.
    let full = c.r#match(pods(8, 4000, 0)).await.unwrap().into_inner();
    assert_eq!(full.result, pb::MatchResult::Allocated as i32, "{full:?}");
    let r = c.r#match(pods(1, 1000, 0)).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Busy as i32, "{r:?}");
    assert!(r.reason.contains("not now"), "{}", r.reason);
    // Satisfiability ignores what is held.
    let mut sat = pods(8, 4000, 0);
    sat.operation = pb::Operation::Satisfiability as i32;
    let r = c.r#match(sat).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Satisfiable as i32, "{r:?}");
    let mut unsat = pods(9, 4000, 0);
    unsat.operation = pb::Operation::Satisfiability as i32;
    let r = c.r#match(unsat).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Unsatisfiable as i32, "{r:?}");
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!(stat.jobs_allocated, 1);
}

#[tokio::test]
async fn reserve_when_busy_and_report_reservations() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let mut fill = pods(8, 4000, 0);
    fill.duration = 100;
    let first = c.r#match(fill).await.unwrap().into_inner();
    assert_eq!(first.result, pb::MatchResult::Allocated as i32);
    let mut later = pods(2, 2000, 0);
    later.operation = pb::Operation::AllocateOrelseReserve as i32;
    later.duration = 50;
    let r = c.r#match(later).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Reserved as i32, "{r:?}");
    assert_eq!(r.start_time, first.start_time + 100);
    assert_eq!(r.pods.len(), 2);
    let jobs = c
        .jobs(pb::JobsRequest {
            states: vec![pb::JobState::Reserved as i32],
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1);
    assert_eq!(jobs.jobs[0].job_id, r.job_id);
    assert_eq!(jobs.jobs[0].duration, 50);
    // A reservation cannot be cancelled in part, but whole.
    let e = c
        .cancel(pb::CancelRequest {
            job_id: r.job_id,
            pods: vec![0],
            nodes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    c.cancel(pb::CancelRequest {
        job_id: r.job_id,
        ..Default::default()
    })
    .await
    .unwrap();
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.jobs_allocated, stat.jobs_reserved), (1, 0));
}

#[tokio::test]
async fn jobspec_requests_match_and_malformed_ones_name_the_path() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let r = c.r#match(jobspec(JOBSPEC)).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
    // One placement per node for a jobspec.
    assert_eq!(r.pods.len(), 2);
    assert_ne!(r.pods[0].node, r.pods[1].node);
    assert_eq!(allocated(&mut c, "core").await, 4);
    let info = c
        .info(pb::InfoRequest { job_id: r.job_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.job.unwrap().duration, 3600);

    let bad = JOBSPEC.replace("count: 2\n    with", "count: 0\n    with");
    let e = c.r#match(jobspec(&bad)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("jobspec.resources[0].count"),
        "{}",
        e.message()
    );
    for junk in ["{", "version: 1", "resources: 5", "\u{0}\u{1}"] {
        let e = c.r#match(jobspec(junk)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{junk:?}: {e:?}");
        assert!(e.message().starts_with("jobspec"), "{}", e.message());
    }
    // Nothing leaked from the failures.
    assert_eq!(allocated(&mut c, "core").await, 4);
}

#[tokio::test]
async fn multi_template_groups_are_all_or_nothing() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let group = |workers: u32| pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![
                pb::PodTemplate {
                    name: "launcher".into(),
                    count: 1,
                    cpu_millis: 500,
                    ..Default::default()
                },
                pb::PodTemplate {
                    name: "worker".into(),
                    count: workers,
                    cpu_millis: 4000,
                    ..Default::default()
                },
            ],
        })),
        ..Default::default()
    };
    // 1 launcher core + 8 full sockets cannot fit in 8 sockets of 4 cores.
    let r = c.r#match(group(8)).await.unwrap().into_inner();
    assert_ne!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
    assert_eq!(
        allocated(&mut c, "core").await,
        0,
        "the launcher was rolled back"
    );
    let r = c.r#match(group(7)).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
    assert_eq!(r.pods.len(), 8);
    assert_eq!(r.pods[0].template, "launcher");
    assert_eq!(allocated(&mut c, "core").await, 29);
    c.cancel(pb::CancelRequest {
        job_id: r.job_id,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(allocated(&mut c, "core").await, 0);
}

#[tokio::test]
async fn hostile_jobspecs_get_answers_not_crashes() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let mut deep = String::from("version: 9999\nresources:\n");
    let mut indent = String::from("  ");
    for _ in 0..300 {
        deep.push_str(&format!(
            "{indent}- type: socket\n{indent}  count: 1\n{indent}  with:\n"
        ));
        indent.push_str("    ");
    }
    deep.push_str(&format!("{indent}- type: core\n{indent}  count: 1\n"));
    let huge = JOBSPEC.replace("count: 2\n    with", "count: 1000000000000\n    with");
    let range = JOBSPEC.replace(
        "count: 2\n    with",
        "count: {min: 1, max: 18446744073709551615, operator: '*', operand: 2}\n    with",
    );
    let unknown_type = JOBSPEC.replace("type: core", "type: quantum-widget");
    for (what, text) in [
        ("deep", deep),
        ("huge", huge),
        ("range", range),
        ("unknown type", unknown_type),
    ] {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            c.r#match(jobspec(&text)),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 10s"));
        match r {
            Ok(resp) => {
                let resp = resp.into_inner();
                if resp.result == pb::MatchResult::Allocated as i32 {
                    c.cancel(pb::CancelRequest {
                        job_id: resp.job_id,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            }
            // The deep one is over half a megabyte of indentation: refused
            // by size before it reaches the parser.
            Err(e) if what == "deep" => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{what}: {e:?}")
            }
            Err(e) => assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}"),
        }
    }
    assert_eq!(allocated(&mut c, "core").await, 0);
    c.stat(pb::StatRequest {}).await.unwrap();
}

#[tokio::test]
async fn templates_that_fit_at_different_times_are_reserved_together() {
    // 8 sockets x (4 cores, 1 GPU). Until t+100 every GPU and one core per
    // socket are held; until t+200 the other three cores of every socket.
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let mut gpus = pods(8, 1000, 1);
    gpus.duration = 100;
    let first = c.r#match(gpus).await.unwrap().into_inner();
    assert_eq!(first.result, pb::MatchResult::Allocated as i32, "{first:?}");
    let mut cores = pods(8, 3000, 0);
    cores.duration = 200;
    let held = c.r#match(cores).await.unwrap().into_inner();
    assert_eq!(held.result, pb::MatchResult::Allocated as i32, "{held:?}");
    let t0 = first.start_time;

    // A 4-core launcher fits a whole socket only from t+200; a GPU worker
    // from t+100. Reserved apart they would start at different times.
    let mut group = pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup {
            templates: vec![
                pb::PodTemplate {
                    name: "launcher".into(),
                    count: 1,
                    cpu_millis: 4000,
                    ..Default::default()
                },
                pb::PodTemplate {
                    name: "worker".into(),
                    count: 1,
                    cpu_millis: 1000,
                    gpus: 1,
                    ..Default::default()
                },
            ],
        })),
        operation: pb::Operation::AllocateOrelseReserve as i32,
        duration: 10,
        ..Default::default()
    };
    let r = c.r#match(group.clone()).await.unwrap().into_inner();
    assert_eq!(r.result, pb::MatchResult::Reserved as i32, "{r:?}");
    assert_eq!(r.start_time, t0 + 200);
    let templates: Vec<&str> = r.pods.iter().map(|p| p.template.as_str()).collect();
    assert_eq!(templates, ["launcher", "worker"]);
    let job = c
        .info(pb::InfoRequest { job_id: r.job_id })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.state, pb::JobState::Reserved as i32);
    assert_eq!(job.start_time, t0 + 200);
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.jobs_allocated, stat.jobs_reserved), (2, 1));
    // Still a reservation for partial cancel, which stays refused.
    let e = c
        .cancel(pb::CancelRequest {
            job_id: r.job_id,
            pods: vec![0],
            nodes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    // A second identical group goes after the first one's 10 seconds.
    let r2 = c.r#match(group.clone()).await.unwrap().into_inner();
    assert_eq!(r2.result, pb::MatchResult::Reserved as i32, "{r2:?}");
    assert!(r2.start_time >= t0 + 200, "{r2:?}");

    // Whole cancels release everything; with the graph empty the same
    // group is allocated now.
    for job_id in [first.job_id, r.job_id, r2.job_id] {
        c.cancel(pb::CancelRequest {
            job_id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let jobs = c
        .jobs(pb::JobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1);
    assert_eq!(jobs.jobs[0].job_id, held.job_id);
    c.cancel(pb::CancelRequest {
        job_id: held.job_id,
        ..Default::default()
    })
    .await
    .unwrap();
    group.duration = 0;
    let now = c.r#match(group).await.unwrap().into_inner();
    assert_eq!(now.result, pb::MatchResult::Allocated as i32, "{now:?}");
}

fn template(
    name: &str,
    count: u32,
    cpu_millis: u64,
    gpus: u32,
    selector: &[(&str, &str)],
) -> pb::PodTemplate {
    pb::PodTemplate {
        name: name.into(),
        count,
        cpu_millis,
        gpus,
        node_selector: selector
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn group(templates: Vec<pb::PodTemplate>) -> pb::MatchRequest {
    pb::MatchRequest {
        request: Some(pb::match_request::Request::Pods(pb::PodGroup { templates })),
        ..Default::default()
    }
}

#[tokio::test]
async fn node_selectors_place_pods_on_labelled_nodes_only() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;

    // No node carries the label: unsatisfiable, and the reason says why.
    let r = c
        .r#match(group(vec![template("w", 1, 1000, 0, &[("zone", "a")])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.result, pb::MatchResult::Unsatisfiable as i32, "{r:?}");
    assert!(
        r.reason.contains("no node has the labels zone=a"),
        "{}",
        r.reason
    );

    // A labelled node added at run time, and the hostname label: each
    // template lands only where its selector allows.
    let add = pb::GraphUpdate {
        update: Some(pb::graph_update::Update::AddNode(pb::AddNode {
            name: "gpu9".into(),
            parent: "rack1".into(),
            sockets: 2,
            cores_per_socket: 4,
            gpus_per_socket: 1,
            memory_per_socket: 16,
            labels: [("accel".to_owned(), "a100".to_owned())].into(),
        })),
    };
    c.update_graph(pb::UpdateGraphRequest { updates: vec![add] })
        .await
        .unwrap();
    let r = c
        .r#match(group(vec![
            template(
                "launcher",
                1,
                4000,
                0,
                &[("kubernetes.io/hostname", "node2")],
            ),
            template("worker", 2, 1000, 1, &[("accel", "a100")]),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
    let nodes: Vec<(&str, &str)> = r
        .pods
        .iter()
        .map(|p| (p.template.as_str(), p.node.as_str()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("launcher", "node2"),
            ("worker", "gpu9"),
            ("worker", "gpu9")
        ]
    );
    // The labelled node's two GPUs are taken: a third labelled worker does
    // not fit now, although GPUs are free on the other nodes.
    let r = c
        .r#match(group(vec![template(
            "worker",
            1,
            1000,
            1,
            &[("accel", "a100")],
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.result, pb::MatchResult::Busy as i32, "{r:?}");
    // The nodes hidden while matching are all up again, and an unselected
    // request still gets the other nodes' GPUs.
    let stat = c.stat(pb::StatRequest {}).await.unwrap().into_inner();
    assert_eq!((stat.nodes_up, stat.nodes_down), (5, 0));
    let r = c
        .r#match(group(vec![template("any", 4, 1000, 1, &[])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.result, pb::MatchResult::Allocated as i32, "{r:?}");
    assert!(r.pods.iter().all(|p| p.node != "gpu9"), "{r:?}");
}
