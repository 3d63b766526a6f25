//! Leases belong to the agent registration that was granted them, over real gRPC with a real
//! SQLite store: another agent (a forger who knows or guesses lease ids and agent ids) is refused
//! on every call and changes nothing, and once a trial has finished its outcome is fixed: the
//! attempt that finished it adds nothing more, and an attempt it superseded adds only its late
//! rows, which the retry may have resumed past (they move a final value only past its epoch).

mod common;

use common::{action, assert_status, eventually, report, sweep, Agent, Coordinator, Env, LONG_TTL, SHORT_TTL};
use sweep_proto::v1::{self as pb, LeaseAction};
use tonic::Code;

async fn finals(c: &Coordinator, sweep: &str) -> Vec<(String, std::collections::HashMap<String, f64>)> {
    let results = c
        .sweeps
        .clone()
        .get_results(pb::GetResultsRequest { sweep_id: sweep.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    results.trials.into_iter().map(|t| (t.status, t.finals)).collect()
}

/// `forger`'s session secret on a request that names someone else's lease or agent id.
fn forged_report(forger: &Agent, lease_id: i64, epoch: u32) -> pb::ReportMetricsRequest {
    pb::ReportMetricsRequest { session_secret: forger.secret.clone(), ..report(lease_id, &[(epoch, &[("loss", 0.0)])]) }
}

#[tokio::test]
async fn another_agent_cannot_heartbeat_report_or_complete_a_lease() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("owned", &[1], "")).await.unwrap();
    let mut a = c.agent("a", 1).await;
    let mut b = c.agent("b", 1).await;
    let lease = a.lease_one().await;

    // Heartbeat: naming the lease under B's own id, and under A's id with B's secret.
    let own_id = b.heartbeat_request(vec![pb::LeaseState { lease_id: lease.lease_id, running: true }]);
    assert_status(b.client.heartbeat(own_id.clone()).await, Code::PermissionDenied, &lease.lease_id.to_string());
    let as_a = pb::HeartbeatRequest { agent_id: a.id.clone(), ..own_id };
    assert_status(b.client.heartbeat(as_a).await, Code::PermissionDenied, &a.id);
    // ReportMetrics and Complete under A's lease with B's secret, and with none.
    assert_status(b.client.report_metrics(forged_report(&b, lease.lease_id, 1)).await, Code::PermissionDenied, "lease");
    assert_status(
        b.client.report_metrics(report(lease.lease_id, &[(1, &[("loss", 0.0)])])).await,
        Code::PermissionDenied,
        "session_secret",
    );
    let forged_exit = pb::CompleteRequest {
        lease_id: lease.lease_id,
        exit_code: Some(0),
        session_secret: b.secret.clone(),
        ..Default::default()
    };
    assert_status(b.client.complete(forged_exit).await, Code::PermissionDenied, "lease");

    // Nothing happened: no row, the trial still only leased (B's "running" beat was refused), and
    // A's own calls all work.
    assert_eq!(c.trial_states("owned").await[0].1, "leased");
    assert!(finals(&c, "owned").await[0].1.is_empty(), "no row was added");
    assert_eq!(action(&a.heartbeat(lease.lease_id, true).await), LeaseAction::Continue);
    assert_eq!(a.report(lease.lease_id, &[(1, &[("loss", 0.5)])]).await.unwrap().rows_added, 1);
    assert_eq!(a.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");
    c.running.flush().await.unwrap();
    let rows = env.parquet_metrics("owned");
    assert_eq!(rows.iter().map(|r| (r.epoch, r.value)).collect::<Vec<_>>(), [(1, 0.5)]);
}

#[tokio::test]
async fn leasing_under_another_agents_id_is_refused() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("ids", &[1], "")).await.unwrap();
    let a = c.agent("a", 1).await;
    let mut b = c.agent("b", 1).await;
    assert_eq!(a.id, "a", "agent ids are guessable: the name given");
    let as_a = pb::LeaseRequest { agent_id: a.id.clone(), free_slots: 1, ..b.lease_request() };
    assert_status(b.client.lease(as_a.clone()).await, Code::PermissionDenied, "agent `a`");
    let no_secret = pb::LeaseRequest { session_secret: String::new(), ..as_a };
    assert_status(b.client.lease(no_secret).await, Code::PermissionDenied, "session_secret");
    assert_eq!(c.trial_states("ids").await[0].1, "pending", "nothing was leased");
    let mut a = c.agent_as(&a);
    assert_eq!(a.lease_one().await.attempt, 1, "A itself still leases");
    // A second registration under a name in use (a restart, or another agent of that name) gets
    // a number added, so every registration has its own id.
    let again = c.agent("a", 1).await;
    assert_eq!(again.id, "a-3");
    assert_ne!(c.agent("a", 1).await.id, again.id);
}

#[tokio::test]
async fn a_report_after_the_trial_finished_adds_nothing_and_moves_no_final() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("final", &[1], "")).await.unwrap();
    let mut a = c.agent("a", 1).await;
    let lease = a.lease_one().await;
    assert_eq!(a.report(lease.lease_id, &[(1, &[("loss", 0.5)])]).await.unwrap().rows_added, 1);
    assert_eq!(a.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");

    // The lease's own holder, with a later epoch: refused as stale, and the trial's finals stay.
    let late = a.report(lease.lease_id, &[(99, &[("loss", 0.01), ("acc", 1.0)])]).await;
    assert_status(late, Code::FailedPrecondition, "succeeded");
    let (status, finals) = finals(&c, "final").await.remove(0);
    assert_eq!(status, "succeeded");
    assert_eq!(finals.into_iter().collect::<Vec<_>>(), [("loss".to_string(), 0.5)]);
    c.running.flush().await.unwrap();
    assert_eq!(env.parquet_metrics("final").len(), 1);
}

#[tokio::test]
async fn an_expired_attempt_keeps_its_late_rows_and_after_the_trial_finishes_they_move_a_final_only_forward() {
    let env = Env::new(SHORT_TTL);
    let c = env.start().await;
    c.submit(sweep("late", &[1], "")).await.unwrap();
    let mut old = c.agent("old", 1).await;
    let first = old.lease_one().await;
    eventually("the lease to expire", || async { (c.trial_states("late").await[0].1 == "pending").then_some(()) })
        .await;
    let mut next = c.agent("next", 1).await;
    let second = next.lease_one().await;
    // Late rows of the superseded attempt are kept while the trial is not finished...
    assert_eq!(old.report(first.lease_id, &[(3, &[("loss", 0.3)])]).await.unwrap().rows_added, 1);
    assert_eq!(action(&next.heartbeat(second.lease_id, true).await), LeaseAction::Continue);
    assert_eq!(next.report(second.lease_id, &[(1, &[("loss", 0.9)])]).await.unwrap().rows_added, 1);
    assert_eq!(next.exit(second.lease_id, 0, "").await.unwrap(), "succeeded");
    let finished = finals(&c, "late").await;
    assert_eq!(finished[0].1["loss"], 0.3, "the latest epoch reported, whichever attempt reported it");
    // ...and once it is, they are still kept: an epoch at or before the final one changes
    // nothing...
    assert_eq!(old.report(first.lease_id, &[(2, &[("loss", 0.2)])]).await.unwrap().rows_added, 1);
    assert_eq!(finals(&c, "late").await, finished);
    // ...and one past it (the retry resumed from the checkpoint this attempt wrote while cut
    // off, past where its reports had reached) is the trial's final value, in trials.parquet
    // too. The outcome stays.
    assert_eq!(old.report(first.lease_id, &[(4, &[("loss", 0.1)])]).await.unwrap().rows_added, 1);
    assert_eq!(finals(&c, "late").await, [("succeeded".to_string(), [("loss".to_string(), 0.1)].into())]);
    // The attempt that finished the trial may add nothing more.
    assert_status(next.report(second.lease_id, &[(9, &[("loss", 0.0)])]).await, Code::FailedPrecondition, "final");
    c.running.flush().await.unwrap();
    let mut keys: Vec<_> = env.parquet_metrics("late").iter().map(|r| (r.attempt, r.epoch)).collect();
    keys.sort();
    assert_eq!(keys, [(1, 2), (1, 3), (1, 4), (2, 1)]);
    let rows = sweep_coordinator::results::read_current_trials(&env.sweep_dir("late")).unwrap();
    assert_eq!((rows[0].status.as_str(), rows[0].finals["loss"]), ("succeeded", 0.1));
}

#[tokio::test]
async fn a_cancelled_trial_records_what_its_stopping_attempt_finishes_and_nothing_after() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("stopping", &[1], "")).await.unwrap();
    let mut a = c.agent("a", 1).await;
    let lease = a.lease_one().await;
    assert_eq!(action(&a.heartbeat(lease.lease_id, true).await), LeaseAction::Continue);
    c.sweeps.clone().cancel_sweep(pb::CancelSweepRequest { sweep_id: "stopping".into() }).await.unwrap();
    assert_eq!(action(&a.heartbeat(lease.lease_id, true).await), LeaseAction::Stop);
    // The epoch it finished while checkpointing on SIGTERM still counts.
    assert_eq!(a.report(lease.lease_id, &[(2, &[("loss", 0.2)])]).await.unwrap().rows_added, 1);
    let stopped = pb::CompleteRequest {
        lease_id: lease.lease_id,
        signal: Some(15),
        stopped_by_request: true,
        ..Default::default()
    };
    assert_eq!(a.complete(stopped).await.unwrap(), "cancelled");
    assert_status(a.report(lease.lease_id, &[(3, &[("loss", 0.1)])]).await, Code::FailedPrecondition, "cancelled");
    assert_eq!(finals(&c, "stopping").await[0].1["loss"], 0.2);
}
