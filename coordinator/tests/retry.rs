//! `sweep retry` over real gRPC: failed and cancelled trials run again with a fresh attempt budget,
//! their earlier attempts and metrics stay, a cancelled sweep becomes active again, and a finished
//! sweep is shown as `done`, never as `active`.

mod common;

use common::*;
use sweep_proto::v1 as pb;
use tonic::Code;

async fn retry(c: &Coordinator, sweep: &str, failed: bool, cancelled: bool) -> Result<u32, tonic::Status> {
    let req = pb::RetrySweepRequest { sweep_id: sweep.into(), failed, cancelled };
    c.sweeps.clone().retry_sweep(req).await.map(|r| r.into_inner().trials_retried)
}

/// The sweep's attempts as (trial_id, attempt, outcome), read from the store's file.
fn attempts(env: &Env, sweep: &str) -> Vec<(String, u32, Option<String>)> {
    let conn = rusqlite::Connection::open(env.config().state.join("state.db")).unwrap();
    let mut q =
        conn.prepare("SELECT trial_id, attempt, outcome FROM attempts WHERE sweep = ?1 ORDER BY lease_id").unwrap();
    let rows = q.query_map([sweep], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

fn state_of(response: &pb::GetSweepResponse) -> String {
    response.summary.as_ref().unwrap().state.clone()
}

#[tokio::test]
async fn a_failed_trial_runs_again_with_a_fresh_budget_and_keeps_its_history() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("r", &[1], "[retry]\nmax_attempts = 2\nbackoff = \"0s\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let first = agent.lease_one().await;
    agent.report(first.lease_id, &[(1, &[("loss", 0.5)])]).await.unwrap();
    assert_eq!(agent.exit(first.lease_id, 1, "boom").await.unwrap(), "pending");
    let second = agent.lease_one().await;
    assert_eq!(agent.exit(second.lease_id, 1, "boom").await.unwrap(), "failed");
    assert_eq!(state_of(&c.get("r").await), "done", "a finished active sweep shows as done");

    assert_eq!(retry(&c, "r", true, false).await.unwrap(), 1);
    let after = c.get("r").await;
    assert_eq!(state_of(&after), "active");
    assert_eq!(after.trials[0].state, "pending");
    assert!(after.trials[0].last_error.contains("boom"), "the last error stays until the next attempt ends");

    // Two more attempts: the budget counts from zero, and attempt numbers go on.
    let third = agent.lease_one().await;
    assert_eq!(third.attempt, 3);
    assert_eq!(agent.exit(third.lease_id, 1, "boom").await.unwrap(), "pending", "a fresh budget of 2");
    let fourth = agent.lease_one().await;
    agent.report(fourth.lease_id, &[(1, &[("loss", 0.25)])]).await.unwrap();
    assert_eq!(agent.exit(fourth.lease_id, 0, "").await.unwrap(), "succeeded");

    let history: Vec<(u32, Option<String>)> = attempts(&env, "r").into_iter().map(|(_, a, o)| (a, o)).collect();
    let outcomes = |o: &str| Some(o.to_string());
    assert_eq!(
        history,
        vec![(1, outcomes("failed")), (2, outcomes("failed")), (3, outcomes("failed")), (4, outcomes("succeeded"))]
    );
    c.running.flush().await.unwrap();
    let attempts_with_loss: Vec<i32> =
        env.parquet_metrics("r").iter().filter(|m| m.metric == "loss").map(|m| m.attempt).collect();
    assert_eq!(attempts_with_loss, vec![1, 4], "the metrics of the first run stay beside the retry's");
    assert_eq!(retry(&c, "r", true, true).await.unwrap(), 0, "nothing failed or cancelled is left");
}

#[tokio::test]
async fn a_cancelled_sweep_becomes_active_again_and_its_running_attempt_is_closed() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("c", &[1, 2, 3], "[retry]\nmax_attempts = 1\nbackoff = \"0s\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let running = agent.lease_one().await;
    let running_trial = running.trial.as_ref().unwrap().trial_id.clone();
    agent.heartbeat(running.lease_id, true).await;
    c.sweeps.clone().cancel_sweep(pb::CancelSweepRequest { sweep_id: "c".into() }).await.unwrap();
    assert_eq!(state_of(&c.get("c").await), "cancelled", "a cancelled sweep stays cancelled when done");
    assert!(agent.lease(1, 0).await.is_empty(), "nothing is leased from a cancelled sweep");

    assert_status(retry(&c, "c", false, false).await, Code::InvalidArgument, "failed or cancelled");
    assert_status(retry(&c, "nope", true, true).await, Code::NotFound, "nope");
    assert_eq!(retry(&c, "c", false, true).await.unwrap(), 3);
    assert_eq!(state_of(&c.get("c").await), "active");
    assert_eq!(c.counts("c").await.pending, 3);
    // The agent still running the cancelled attempt is told to drop it; its attempt is closed.
    assert_eq!(action(&agent.heartbeat(running.lease_id, true).await), pb::LeaseAction::Abandon);
    assert_eq!(attempts(&env, "c"), vec![(running_trial.clone(), 1, Some("cancelled".to_string()))]);

    let mut attempts_by_trial = Vec::new();
    for _ in 0..3 {
        let lease = agent.lease_one().await;
        attempts_by_trial.push((lease.trial.as_ref().unwrap().trial_id.clone(), lease.attempt));
        assert_eq!(agent.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");
    }
    assert!(attempts_by_trial.contains(&(running_trial.clone(), 2)), "{attempts_by_trial:?}");
    let done = c.get("c").await;
    assert_eq!(state_of(&done), "done");
    assert!(done.summary.unwrap().done);
    let listed = c.sweeps.clone().list_sweeps(pb::ListSweepsRequest {}).await.unwrap().into_inner();
    assert!(listed.sweeps.iter().all(|s| !(s.state == "active" && s.done)), "{:?}", listed.sweeps);
}
