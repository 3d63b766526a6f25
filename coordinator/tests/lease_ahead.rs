//! What agents that keep their slots busy rely on: a lease call of an idle agent waits (within its
//! bound) until trials are queued instead of coming back empty, and a lease held ahead of a free
//! slot that an agent hands back unstarted puts the trial back in the queue without counting a
//! lost lease, however often it happens.

mod common;

use common::*;
use std::time::{Duration, Instant};
use sweep_coordinator::limits::MAX_LEASE_WAIT_MS;
use sweep_coordinator::service::agents::lease_wait;
use sweep_proto::v1 as pb;

#[tokio::test]
async fn an_idle_agents_lease_waits_until_a_sweep_is_submitted() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let agent = c.agent("a", 1).await;
    let lease = |wait_ms: u32| {
        let (mut client, req) =
            (agent.client.clone(), pb::LeaseRequest { free_slots: 1, wait_ms, ..agent.lease_request() });
        async move {
            let asked = Instant::now();
            let leases = client.lease(req).await.expect("lease").into_inner().leases;
            (leases, asked.elapsed())
        }
    };

    // Nothing queued: answered empty once the wait is over, not before.
    let (leases, waited) = lease(300).await;
    assert!(leases.is_empty(), "{leases:?}");
    assert!(waited >= Duration::from_millis(300), "answered after {waited:?}");
    let (leases, waited) = lease(0).await;
    assert!(leases.is_empty() && waited < Duration::from_millis(300), "no wait asked: at once ({waited:?})");

    // Another agent's heartbeats and an unrelated write do not end the wait; a submission does.
    let waiting = tokio::spawn(lease(MAX_LEASE_WAIT_MS));
    let mut other = c.agent("b", 1).await;
    for _ in 0..3 {
        let req = other.heartbeat_request(Vec::new());
        other.client.heartbeat(req).await.expect("heartbeat");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!waiting.is_finished(), "the lease call answered before any trial was queued");
    let submitted = Instant::now();
    c.submit(sweep("waited-for", &[1], "")).await.unwrap();
    let (leases, _) = waiting.await.unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(submitted.elapsed() < Duration::from_secs(5), "granted {:?} after the submission", submitted.elapsed());
}

#[test]
fn a_lease_call_waits_within_its_bound() {
    assert_eq!(lease_wait(0), Duration::ZERO);
    assert_eq!(lease_wait(1_500), Duration::from_millis(1_500));
    assert_eq!(lease_wait(MAX_LEASE_WAIT_MS + 1), Duration::from_millis(MAX_LEASE_WAIT_MS.into()));
    assert_eq!(lease_wait(u32::MAX), Duration::from_millis(MAX_LEASE_WAIT_MS.into()));
}

#[tokio::test]
async fn a_lease_handed_back_unstarted_is_queued_again_without_counting_as_lost() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    // With one lost lease allowed, a second drain of a started attempt fails the trial; unstarted
    // hand-backs do not count.
    c.submit(sweep("ahead", &[1], "[retry]\nmax_lost = 1")).await.unwrap();
    let mut agent = c.agent("a", 2).await;
    for attempt in 1..=4 {
        let lease = agent.lease_one().await;
        assert_eq!(lease.attempt, attempt);
        let unstarted =
            pb::CompleteRequest { lease_id: lease.lease_id, released: true, unstarted: true, ..Default::default() };
        assert_eq!(agent.complete(unstarted).await.unwrap(), "pending", "attempt {attempt}");
    }
    let states = c.trial_states("ahead").await;
    assert_eq!(states[0].1, "pending");
    let trial = &c.get("ahead").await.trials[0];
    assert_eq!(trial.last_error, "handed back unstarted by a draining agent");

    // A started attempt handed back is a lost lease, as before: the first is retried, the second
    // is one too many.
    for (expected, _) in [("pending", 1), ("failed", 2)] {
        let lease = agent.lease_one().await;
        assert_eq!(agent.heartbeat(lease.lease_id, true).await.action, pb::LeaseAction::Continue as i32);
        let drained = pb::CompleteRequest { lease_id: lease.lease_id, released: true, ..Default::default() };
        assert_eq!(agent.complete(drained).await.unwrap(), expected);
    }
}
