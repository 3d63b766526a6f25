//! Failure classes over real gRPC: retries wait out a backoff, a draining agent's hand-back is an
//! infrastructure retry, and an agent whose trials keep failing is quarantined.

mod common;

use common::*;
use std::time::Duration;
use sweep_proto::v1 as pb;

const LONG_TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_failed_trial_waits_out_its_backoff_before_the_next_attempt() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    // Full jitter over [0, 1 h): an immediate retry is all but impossible.
    c.submit(sweep("slow", &[1], "[retry]\nmax_attempts = 3\nbackoff = \"1h\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    assert_eq!(agent.exit(lease.lease_id, 1, "boom").await.unwrap(), "pending");
    assert!(agent.lease(1, 0).await.is_empty(), "the retry is held back");
    assert_eq!(c.counts("slow").await.pending, 1);

    c.submit(sweep("fast", &[1], "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let lease = agent.lease_one().await;
    assert_eq!(lease.sweep_id, "fast", "other work goes on meanwhile");
    assert_eq!(agent.exit(lease.lease_id, 1, "boom").await.unwrap(), "pending");
    assert_eq!(agent.lease_one().await.attempt, 2, "no backoff configured: retried at once");
}

#[tokio::test]
async fn out_of_memory_is_retried_under_the_policy() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("oom", &[1], "[retry]\nmax_attempts = 2\nbackoff = \"0s\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let first = agent.lease_one().await;
    let oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB";
    assert_eq!(agent.exit(first.lease_id, 1, oom).await.unwrap(), "pending");
    let second = agent.lease_one().await;
    assert_eq!(agent.exit(second.lease_id, 1, oom).await.unwrap(), "failed");
    assert!(c.get("oom").await.trials[0].last_error.contains("CUDA out of memory"));
}

#[tokio::test]
async fn a_handed_back_lease_runs_again_at_once_without_using_an_attempt() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("drain", &[1], "[retry]\nmax_attempts = 1\nmax_lost = 2\nbackoff = \"1h\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let release = |lease_id| pb::CompleteRequest { lease_id, signal: Some(15), released: true, ..Default::default() };
    for attempt in 1..=2 {
        let lease = agent.lease_one().await;
        assert_eq!(lease.attempt, attempt);
        agent.heartbeat(lease.lease_id, true).await;
        assert_eq!(agent.complete(release(lease.lease_id)).await.unwrap(), "pending", "no backoff, no attempt used");
    }
    // The third hand-back exceeds max_lost = 2.
    let lease = agent.lease_one().await;
    assert_eq!(agent.complete(release(lease.lease_id)).await.unwrap(), "failed");
    assert!(c.get("drain").await.trials[0].last_error.contains("draining agent"));
}

#[tokio::test]
async fn an_agent_whose_trials_keep_failing_is_quarantined() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let widths: Vec<u32> = (1..=8).collect();
    c.submit(sweep("burn", &widths, "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let mut broken = c.agent("broken", 1).await;
    let mut healthy = c.agent("healthy", 1).await;

    // A success ends a streak.
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 1, "cuda error").await.unwrap();
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 0, "").await.unwrap();
    for _ in 0..sweep_coordinator::store::DEFAULT_QUARANTINE_AFTER {
        let lease = broken.lease_one().await;
        broken.exit(lease.lease_id, 1, "cuda error").await.unwrap();
    }
    assert!(broken.lease(1, 0).await.is_empty(), "quarantined: no new leases");
    let agents = c.get("burn").await.agents;
    let b = agents.iter().find(|a| a.agent_id == broken.id).unwrap();
    assert!(b.quarantined && b.consecutive_failures == 5, "{b:?}");
    let h = agents.iter().find(|a| a.agent_id == healthy.id).unwrap();
    assert!(!h.quarantined, "{h:?}");
    let lease = healthy.lease_one().await;
    assert_eq!(healthy.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded", "the sweep goes on elsewhere");
}
