//! The user's side over real gRPC: idempotent submission, refusals (forged trial ids, unknown
//! sweeps), cancellation while a trial runs, WatchSweep until the sweep is done, and the gRPC
//! health and reflection services. Each test starts its own coordinator on 127.0.0.1:0.

mod common;

use common::{action, assert_status, sweep, Env, LONG_TTL};
use std::time::Duration;
use sweep_proto::v1::{self as pb, LeaseAction};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn submitting_the_same_sweep_twice_adds_nothing_and_a_changed_grid_adds_only_new_trials() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let first = c.submit(sweep("idem", &[1, 2], "")).await.unwrap();
    assert_eq!((first.sweep_id.as_str(), first.trials_added, first.trials_total), ("idem", 2, 2));
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;

    let again = c.submit(sweep("idem", &[1, 2], "")).await.unwrap();
    assert_eq!((again.trials_added, again.trials_total), (0, 2));

    let grown = sweep("idem", &[1, 2, 3], "");
    let expected: Vec<String> = grown.trials.iter().map(|t| t.trial_id.clone()).collect();
    let changed = c.submit(grown).await.unwrap();
    assert_eq!((changed.trials_added, changed.trials_total), (1, 3));

    let trials = c.trial_states("idem").await;
    let ids: Vec<String> = trials.iter().map(|t| t.0.clone()).collect();
    assert_eq!(ids, expected, "the stored trials are the expansion of the latest file, in order");
    assert_eq!((trials[0].1.as_str(), trials[0].2), ("leased", 1), "a resubmitted trial keeps its state and attempt");
    assert_eq!(trials[0].0, lease.trial.unwrap().trial_id);
}

#[tokio::test]
async fn a_trial_whose_id_does_not_match_its_content_is_refused() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut forged = sweep("forged", &[1, 2], "");
    let id = forged.trials[1].trial_id.clone();
    forged.trials[1].params_json = forged.trials[1].params_json.replace("\"width\":2", "\"width\":99");
    assert!(
        forged.trials[1].params_json.contains("99"),
        "the test changed the content: {}",
        forged.trials[1].params_json
    );

    assert_status(c.submit(forged).await, Code::InvalidArgument, &id);
    assert_status(
        c.sweeps.clone().get_sweep(pb::GetSweepRequest { sweep_id: "forged".into(), ..Default::default() }).await,
        Code::NotFound,
        "forged",
    );
}

#[tokio::test]
async fn unknown_sweeps_are_not_found_on_every_call_and_the_message_names_them() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut s = c.sweeps.clone();
    let name = || "no-such-sweep".to_string();
    assert_status(
        s.get_sweep(pb::GetSweepRequest { sweep_id: name(), ..Default::default() }).await,
        Code::NotFound,
        &name(),
    );
    assert_status(s.cancel_sweep(pb::CancelSweepRequest { sweep_id: name() }).await, Code::NotFound, &name());
    assert_status(s.watch_sweep(pb::WatchSweepRequest { sweep_id: name() }).await, Code::NotFound, &name());
    assert_status(
        s.get_results(pb::GetResultsRequest { sweep_id: name(), ..Default::default() }).await,
        Code::NotFound,
        &name(),
    );
}

#[tokio::test]
async fn cancelling_stops_the_running_trial_and_cancels_the_pending_ones() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("doomed", &[1, 2, 3], "")).await.unwrap();
    c.submit(sweep("other", &[1], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    assert_eq!(lease.sweep_id, "doomed");
    agent.heartbeat(lease.lease_id, true).await;

    let cancelled = c.sweeps.clone().cancel_sweep(pb::CancelSweepRequest { sweep_id: "doomed".into() }).await.unwrap();
    assert_eq!(cancelled.into_inner().trials_cancelled, 3, "two pending and one running");
    let got = c.get("doomed").await;
    assert_eq!(got.summary.as_ref().unwrap().state, "cancelled");
    assert!(got.trials.iter().all(|t| t.state == "cancelled"), "{:?}", got.trials);

    assert_eq!(action(&agent.heartbeat(lease.lease_id, true).await), LeaseAction::Stop);
    let mut other_agent = c.agent("b", 4).await;
    let later = other_agent.lease(4, 0).await;
    assert!(
        later.iter().all(|l| l.sweep_id == "other") && later.len() == 1,
        "only the active sweep's trial: {later:?}"
    );

    let stopped = pb::CompleteRequest {
        lease_id: lease.lease_id,
        signal: Some(15),
        stopped_by_request: true,
        ..Default::default()
    };
    assert_eq!(agent.complete(stopped).await.unwrap(), "cancelled");
    assert_eq!(action(&agent.heartbeat(lease.lease_id, false).await), LeaseAction::Abandon, "the closed lease is gone");
    assert_eq!(c.counts("doomed").await.cancelled, 3);
}

#[tokio::test]
async fn watch_streams_summaries_and_ends_when_every_trial_has_finished() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("watched", &[1, 2], "")).await.unwrap();
    let mut stream =
        c.sweeps.clone().watch_sweep(pb::WatchSweepRequest { sweep_id: "watched".into() }).await.unwrap().into_inner();
    let first = next(&mut stream).await.expect("a first summary").unwrap().summary.unwrap();
    assert_eq!(
        (first.sweep_id.as_str(), first.total, first.done, first.counts.unwrap().pending),
        ("watched", 2, false, 2)
    );

    let mut agent = c.agent("a", 2).await;
    let leases = agent.lease(2, 0).await;
    assert_eq!(agent.exit(leases[0].lease_id, 0, "").await.unwrap(), "succeeded");
    assert_eq!(agent.exit(leases[1].lease_id, 78, "bad").await.unwrap(), "failed");

    let mut last = first;
    while let Some(msg) = next(&mut stream).await {
        last = msg.expect("no error on the stream").summary.unwrap();
    }
    let counts = last.counts.unwrap();
    assert!(last.done, "the last summary says done: {counts:?}");
    assert_eq!((counts.succeeded, counts.failed, counts.pending, counts.leased), (1, 1, 0, 0));

    // A sweep already done answers one summary and ends.
    let mut again =
        c.sweeps.clone().watch_sweep(pb::WatchSweepRequest { sweep_id: "watched".into() }).await.unwrap().into_inner();
    assert!(next(&mut again).await.unwrap().unwrap().summary.unwrap().done);
    assert!(next(&mut again).await.is_none());
}

/// The next message of a watch, failing the test if none comes within 5 s.
async fn next(
    s: &mut tonic::Streaming<pb::WatchSweepResponse>,
) -> Option<Result<pb::WatchSweepResponse, tonic::Status>> {
    tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("watch answers within 5 s")
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_services() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    let env = Env::new(LONG_TTL);
    let c = env.start().await;

    let mut health = HealthClient::new(c.channel.clone());
    for service in ["sweep.v1.SweepService", "sweep.v1.AgentService"] {
        let r = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service}");
    }
    assert_status(health.check(HealthCheckRequest { service: "sweep.v1.Nope".into() }).await, Code::NotFound, "");

    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(c.channel.clone())
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["sweep.v1.SweepService", "sweep.v1.AgentService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == service), "{service} missing from {names:?}");
    }
}
