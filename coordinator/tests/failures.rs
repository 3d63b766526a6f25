//! Failure classes over real gRPC: retries wait out a backoff, a draining agent's hand-back is an
//! infrastructure retry, an agent whose trials succeed elsewhere is quarantined, and a sweep whose
//! trials fail on every agent is paused.

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

/// What `ListAgents` says of one agent.
async fn agent_info(c: &Coordinator, id: &str) -> pb::AgentInfo {
    let agents = c.sweeps.clone().list_agents(pb::ListAgentsRequest {}).await.expect("list agents").into_inner().agents;
    agents.into_iter().find(|a| a.agent_id == id).unwrap_or_else(|| panic!("agent {id} is listed"))
}

async fn summary(c: &Coordinator, sweep: &str) -> pb::SweepSummary {
    c.get(sweep).await.summary.expect("summary")
}

#[tokio::test]
async fn an_agent_whose_trials_succeed_elsewhere_is_quarantined_until_let_out() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let widths: Vec<u32> = (1..=12).collect();
    c.submit(sweep("burn", &widths, "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let mut broken = c.agent("broken", 1).await;
    let mut healthy = c.agent("healthy", 1).await;

    // Failures before anything succeeded elsewhere blame nobody yet; a success of its own ends
    // the run.
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 1, "cuda error").await.unwrap();
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 0, "").await.unwrap();
    for _ in 0..4 {
        let lease = broken.lease_one().await;
        broken.exit(lease.lease_id, 1, "cuda error: device unavailable").await.unwrap();
    }
    assert!(!agent_info(&c, &broken.id).await.quarantined, "the sweep has succeeded nowhere else yet");
    // The sweep succeeds on the healthy node: the broken node's failures now blame it.
    let lease = healthy.lease_one().await;
    assert_eq!(healthy.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 1, "cuda error: device unavailable").await.unwrap();

    let answer = broken.client.lease(pb::LeaseRequest { free_slots: 1, ..broken.lease_request() }).await.unwrap();
    let answer = answer.into_inner();
    assert!(answer.leases.is_empty(), "quarantined: no new leases");
    assert!(answer.quarantine.contains("succeed on other agents"), "the agent is told why: {}", answer.quarantine);
    let b = agent_info(&c, &broken.id).await;
    assert!(b.quarantined && b.consecutive_failures == 5, "{b:?}");
    assert!(b.quarantine_reason.contains("burn") && b.quarantine_reason.contains("device unavailable"), "{b:?}");
    assert!(!agent_info(&c, &healthy.id).await.quarantined);
    let lease = healthy.lease_one().await;
    assert_eq!(healthy.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded", "the sweep goes on elsewhere");
    assert_eq!(summary(&c, "burn").await.state, "active");

    // Let out without a restart: it leases at once, and its old failures do not count again.
    let freed = c
        .sweeps
        .clone()
        .unquarantine_agent(pb::UnquarantineAgentRequest { agent: "broken".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(freed.agent_ids, vec![broken.id.clone()], "a registration name frees its agents");
    let b = agent_info(&c, &broken.id).await;
    assert!(!b.quarantined && b.quarantine_reason.is_empty() && b.consecutive_failures == 0, "{b:?}");
    let lease = broken.lease_one().await;
    broken.exit(lease.lease_id, 1, "cuda error").await.unwrap();
    assert_eq!(broken.lease(1, 0).await.len(), 1, "one new failure is not five");
    assert_status(
        c.sweeps.clone().unquarantine_agent(pb::UnquarantineAgentRequest { agent: "nobody".into() }).await,
        tonic::Code::NotFound,
        "nobody",
    );
}

#[tokio::test]
async fn a_sweep_that_fails_on_every_agent_is_paused_and_the_agents_serve_the_next() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let widths: Vec<u32> = (1..=8).collect();
    c.submit(sweep("typo", &widths, "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let mut a = c.agent("a", 1).await;
    let mut b = c.agent("b", 1).await;
    let error = "train.py: error: unrecognized arguments: --widht=3";
    for i in 0..sweep_coordinator::store::DEFAULT_PAUSE_AFTER {
        let agent = if i % 2 == 0 { &mut a } else { &mut b };
        let lease = agent.lease_one().await;
        agent.exit(lease.lease_id, 2, error).await.unwrap();
    }
    let s = summary(&c, "typo").await;
    assert_eq!(s.state, "paused", "{s:?}");
    assert!(s.pause_reason.contains("5 attempts failed on 2 agents"), "{s:?}");
    assert!(s.pause_error.contains("unrecognized arguments"), "{s:?}");
    assert!(s.counts.unwrap().pending > 0 && s.waiting.is_empty(), "a paused sweep waits for nobody: {s:?}");
    assert!(a.lease(1, 0).await.is_empty(), "a paused sweep's pending trials are not leased");
    for agent in [&a, &b] {
        let info = agent_info(&c, &agent.id).await;
        assert!(!info.quarantined, "a broken sweep blames no node: {info:?}");
    }

    // The next sweep runs on both agents.
    c.submit(sweep("fine", &[1, 2], "")).await.unwrap();
    for agent in [&mut a, &mut b] {
        let lease = agent.lease_one().await;
        assert_eq!(lease.sweep_id, "fine");
        assert_eq!(agent.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");
    }
    assert!(summary(&c, "fine").await.done);

    // Resumed, its trials are leased again, and only new failures count towards pausing it.
    c.sweeps.clone().resume_sweep(pb::ResumeSweepRequest { sweep_id: "typo".into() }).await.unwrap();
    let s = summary(&c, "typo").await;
    assert!(s.state == "active" && s.pause_reason.is_empty() && s.pause_error.is_empty(), "{s:?}");
    let lease = a.lease_one().await;
    assert_eq!(lease.sweep_id, "typo");
    a.exit(lease.lease_id, 2, error).await.unwrap();
    assert_eq!(summary(&c, "typo").await.state, "active", "one failure after resuming is not five");
    assert_status(
        c.sweeps.clone().resume_sweep(pb::ResumeSweepRequest { sweep_id: "typo".into() }).await,
        tonic::Code::FailedPrecondition,
        "not paused",
    );
}

#[tokio::test]
async fn a_sweep_that_fails_on_the_only_agent_is_paused() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("alone", &[1, 2, 3, 4], "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let mut only = c.agent("local-0", 1).await;
    for _ in 0..sweep_coordinator::store::DEFAULT_PAUSE_AFTER {
        let lease = only.lease_one().await;
        only.exit(lease.lease_id, 1, "No such file or directory").await.unwrap();
    }
    let s = summary(&c, "alone").await;
    assert_eq!(s.state, "paused", "{s:?}");
    assert!(s.pause_reason.contains("on 1 agent "), "{s:?}");
    assert!(!agent_info(&c, &only.id).await.quarantined);
}

#[tokio::test]
async fn pending_trials_that_no_agent_can_run_say_why() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("big", &[1], "[resources]\ngpus = 2")).await.unwrap();
    let s = summary(&c, "big").await;
    assert!(s.waiting.contains("no agent is connected"), "{s:?}");
    let _cpu = c.agent("cpu-only", 1).await;
    let s = summary(&c, "big").await;
    assert!(s.waiting.contains("need 2 GPUs") && s.waiting.contains("at most 0"), "{s:?}");
    c.submit(sweep("small", &[1], "")).await.unwrap();
    assert!(summary(&c, "small").await.waiting.is_empty(), "a CPU trial has an agent");
}
