//! A session of gRPC requests from the input, each a selector byte, a
//! 2-byte length and a protobuf body (match, cancel, graph update, info,
//! resources, jobs), decoded and served by the standalone engine on a small
//! cluster with the service's own match checks: every request is answered
//! or refused, and the graph's totals stay exact after each one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_grpc::{Engine, Limits, StandaloneEngine, validate_match};
use phalanx_proto::v1 as pb;
use prost::Message;

/// Requests per input at most.
const MAX_REQUESTS: usize = 32;

fn engine() -> StandaloneEngine {
    StandaloneEngine::new(phalanx_fuzz::small_cluster(), "first")
        .expect("a known policy")
        .with_max_vertices(20_000)
}

/// Every resource total is what is free, allocated and down.
fn totals_add_up(e: &StandaloneEngine) {
    let res = e
        .resources(pb::ResourcesRequest::default())
        .expect("resources of a sound graph");
    for t in &res.totals {
        let sum: u64 = res
            .nodes
            .iter()
            .flat_map(|n| &n.resources)
            .filter(|r| r.r#type == t.r#type)
            .map(|r| r.total)
            .sum();
        assert_eq!(sum, t.total, "{}: nodes' totals", t.r#type);
        assert_eq!(t.total, t.free + t.allocated + t.down, "{}", t.r#type);
    }
    e.stat().expect("stat of a sound graph");
}

fuzz_target!(|data: &[u8]| {
    let mut e = engine();
    let limits = Limits::default();
    let mut rest = data;
    for clock in 0..MAX_REQUESTS as i64 {
        let [pick, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        e.advance_clock(clock);
        match pick % 6 {
            0 => {
                if let Ok(req) = pb::MatchRequest::decode(body)
                    && validate_match(&req, &limits).is_ok()
                {
                    let _ = e.match_group(req);
                }
            }
            1 => {
                if let Ok(req) = pb::CancelRequest::decode(body) {
                    let _ = e.cancel(req);
                }
            }
            2 => {
                if let Ok(req) = pb::UpdateGraphRequest::decode(body) {
                    let _ = e.update_graph(req);
                }
            }
            3 => {
                if let Ok(req) = pb::InfoRequest::decode(body) {
                    let _ = e.info(req);
                }
            }
            4 => {
                if let Ok(req) = pb::ResourcesRequest::decode(body) {
                    let _ = e.resources(req);
                }
            }
            _ => {
                if let Ok(req) = pb::JobsRequest::decode(body) {
                    let _ = e.jobs(req);
                }
            }
        }
        totals_add_up(&e);
    }
});
