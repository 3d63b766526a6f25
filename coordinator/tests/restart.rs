//! A coordinator restarted on the same state and results folders carries on where it stopped:
//! states, attempts and live leases come back from SQLite, and the Parquet sink resumes from the
//! files so no metric row is written twice.

mod common;

use common::{action, sweep, Env, LONG_TTL};
use std::time::Duration;
use sweep_proto::v1::{LeaseAction, WatchSweepRequest};

#[tokio::test]
async fn a_restarted_coordinator_keeps_states_leases_and_writes_each_metric_once() {
    let env = Env::new(LONG_TTL);
    let before = env.start().await;
    before.submit(sweep("durable", &[1, 2], "")).await.unwrap();
    let mut agent = before.agent("a", 1).await;
    let lease = agent.lease_one().await;
    assert_eq!(action(&agent.heartbeat(lease.lease_id, true).await), LeaseAction::Continue);
    let early: &[(u32, &[(&str, f64)])] = &[(0, &[("loss", 1.0), ("acc", 0.1)]), (1, &[("loss", 0.8), ("acc", 0.3)])];
    assert_eq!(agent.report(lease.lease_id, early).await.unwrap().rows_added, 4);
    let states = before.trial_states("durable").await;
    assert_eq!(states.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["running", "pending"]);

    // The agent's connection stays open: shutdown must not wait for it.
    let shutdown = tokio::time::timeout(Duration::from_secs(10), before.running.shutdown()).await;
    shutdown.expect("shutdown finishes within 10 s with a client connected").expect("clean shutdown");
    let written = env.parquet_metrics("durable");
    assert_eq!(written.len(), 4, "shutdown writes the stored rows to parquet");

    let after = env.start().await;
    assert_eq!(after.trial_states("durable").await, states, "same trials, states and attempts");
    let mut agent = after.agent_as(&agent);
    let hb = agent.heartbeat(lease.lease_id, true).await;
    assert_eq!(action(&hb), LeaseAction::Continue, "the lease outlives the restart");
    assert!(hb.deadline_ms >= lease.deadline_ms);

    let retried = agent.report(lease.lease_id, early).await.unwrap();
    assert_eq!((retried.rows_added, retried.rows_duplicate), (0, 4), "a report retried across the restart is a no-op");
    assert_eq!(agent.report(lease.lease_id, &[(2, &[("loss", 0.5), ("acc", 0.6)])]).await.unwrap().rows_added, 2);
    assert_eq!(agent.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");
    after.running.flush().await.unwrap();

    let rows = env.parquet_metrics("durable");
    assert_eq!(rows.len(), 6, "each row exactly once: {rows:?}");
    assert!(written.iter().all(|w| rows.contains(w)), "rows written before the restart are kept as they were");
    let trials = sweep_coordinator::results::read_trials_table(
        &env.sweep_dir("durable").join(sweep_coordinator::results::TRIALS_FILE),
    )
    .unwrap();
    let statuses: Vec<_> = trials.iter().map(|t| (t.status.as_str(), t.attempts)).collect();
    assert_eq!(statuses, [("succeeded", 1), ("pending", 0)]);
    assert_eq!(trials[0].finals.get("acc"), Some(&0.6));
    after.running.shutdown().await.unwrap();
}

#[tokio::test]

async fn shutdown_finishes_while_a_user_watches_an_unfinished_sweep() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("watched", &[1], "")).await.unwrap();
    let _watch = c.sweeps.clone().watch_sweep(WatchSweepRequest { sweep_id: "watched".into() }).await.unwrap();
    let shutdown = tokio::time::timeout(Duration::from_secs(5), c.running.shutdown()).await;
    shutdown.expect("shutdown finishes within 5 s with a watch open").expect("clean shutdown");
}
