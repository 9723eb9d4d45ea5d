//! The Session stream against a real server: answers in request order,
//! failures as answers that leave the session open, and the same effect on
//! the graph as the unary calls.

mod common;

use common::*;
use pb::session_request::Request as In;
use pb::session_response::Response as Out;
use phalanx_grpc::ServerConfig;
use phalanx_proto::v1 as pb;
use tonic::Code;

fn ask(request: In) -> pb::SessionRequest {
    pb::SessionRequest {
        request: Some(request),
    }
}

#[tokio::test]
async fn pipelined_session_answers_in_order_and_survives_bad_requests() {
    let server = TestServer::start(engine(&small_shape()), ServerConfig::default()).await;
    let mut c = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut answers = c
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // Everything is sent before the first answer is read.
    let sent = [
        In::Match(pods(2, 1000, 0)),
        In::Match(pods(40, 1000, 0)),
        In::Cancel(pb::CancelRequest::default()),
        In::Cancel(pb::CancelRequest {
            job_id: 999,
            ..Default::default()
        }),
        In::Match(pb::MatchRequest::default()),
        In::Match(pods(1, 1000, 0)),
    ];
    for r in sent {
        tx.send(ask(r)).await.unwrap();
    }
    let mut next = async || answers.message().await.unwrap().unwrap().response.unwrap();
    let Out::Match(first) = next().await else {
        panic!("the first answer is not the first match")
    };
    assert_eq!(first.result, pb::MatchResult::Allocated as i32);
    assert_eq!(first.pods.len(), 2);
    let Out::Match(too_big) = next().await else {
        panic!("the second answer is not the second match")
    };
    assert_eq!(too_big.result, pb::MatchResult::Unsatisfiable as i32);
    let errors = [
        (Code::InvalidArgument, "job_id"),
        (Code::NotFound, "999"),
        (Code::InvalidArgument, "request"),
    ];
    for (code, mentions) in errors {
        match next().await {
            Out::Error(e) => {
                assert_eq!(e.code, code as i32, "{e:?}");
                assert!(e.message.contains(mentions), "{e:?}");
            }
            other => panic!("expected a {code:?} error, got {other:?}"),
        }
    }
    let Out::Match(last) = next().await else {
        panic!("the last answer is not the last match")
    };
    assert_eq!(last.result, pb::MatchResult::Allocated as i32);

    // The session's matches are visible to unary calls, and its cancels
    // release what they held.
    assert_eq!(allocated(&mut c, "core").await, 3);
    let info = c
        .info(pb::InfoRequest {
            job_id: first.job_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.job.unwrap().pods, first.pods);
    for job_id in [first.job_id, last.job_id] {
        tx.send(ask(In::Cancel(pb::CancelRequest {
            job_id,
            ..Default::default()
        })))
        .await
        .unwrap();
        let Out::Cancel(done) = next().await else {
            panic!("expected a cancel answer")
        };
        assert!(done.job_removed);
    }
    assert_eq!(allocated(&mut c, "core").await, 0);

    // Closing the client side ends the stream cleanly.
    drop(tx);
    assert!(answers.message().await.unwrap().is_none());
}
