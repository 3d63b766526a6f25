//! The agent's side of a trial over real gRPC: leasing within free slots and GPUs, heartbeats,
//! metric reports, completion, fencing of expired leases, idempotent metrics and the retry policy.
//! Each test starts its own coordinator on 127.0.0.1:0 with a temporary store and results folder.

mod common;

use common::{action, assert_status, eventually, now_ms, submission, sweep, Agent, Env, LONG_TTL, SHORT_TTL};
use serde_json::Value;
use sweep_proto::v1::{self as pb, LeaseAction};
use tonic::Code;

#[tokio::test]
async fn lease_respects_free_slots_and_free_gpus() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("gpu", &[1], "[resources]\ngpus = 1")).await.unwrap();
    c.submit(sweep("cpu", &[1, 2, 3], "")).await.unwrap();
    let mut agent = c.agent("a", 8).await;

    let cpu_only = agent.lease(2, 0).await;
    assert_eq!(cpu_only.len(), 2, "two free slots give two leases");
    assert!(
        cpu_only.iter().all(|l| l.sweep_id == "cpu"),
        "a gpus=1 trial goes to no agent with free_gpus=0: {cpu_only:?}"
    );
    assert_eq!(c.counts("gpu").await.pending, 1);

    let with_gpu = agent.lease(4, 1).await;
    let sweeps: Vec<_> = with_gpu.iter().map(|l| l.sweep_id.as_str()).collect();
    assert_eq!(sweeps, ["gpu", "cpu"], "the older sweep first, then the CPU trial left");
    assert_eq!(with_gpu[0].trial.as_ref().unwrap().gpus, 1);
    assert!(agent.lease(4, 4).await.is_empty(), "nothing is left to lease");
}

#[tokio::test]
async fn a_trial_runs_from_lease_to_success_and_its_results_are_served() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let req = sweep("flow", &[1, 2], "");
    let first_id = req.trials[0].trial_id.clone();
    c.submit(req).await.unwrap();
    let mut agent = c.agent("a", 1).await;

    let before = now_ms();
    let lease = agent.lease_one().await;
    assert_eq!((lease.sweep_id.as_str(), lease.attempt), ("flow", 1));
    assert_eq!(lease.trial.as_ref().unwrap().trial_id, first_id, "trials are leased in expansion order");
    assert!(lease.deadline_ms > before, "deadline {} is in the future", lease.deadline_ms);
    let counts = c.counts("flow").await;
    assert_eq!((counts.pending, counts.leased, counts.running), (1, 1, 0));

    let hb = agent.heartbeat(lease.lease_id, true).await;
    assert_eq!(action(&hb), LeaseAction::Continue);
    assert!(hb.deadline_ms >= lease.deadline_ms, "a heartbeat extends the lease");
    let got = c.get("flow").await;
    let t = &got.trials[0];
    assert_eq!((t.state.as_str(), t.attempt, t.agent.as_str()), ("running", 1, agent.id.as_str()));
    assert_eq!(got.summary.unwrap().counts.unwrap().running, 1);
    assert_eq!(got.agents.iter().find(|a| a.agent_id == agent.id).map(|a| a.running), Some(1));

    // Epoch 2 arrives before epoch 1: finals follow the latest epoch, not the latest report.
    let r = agent
        .report(
            lease.lease_id,
            &[(0, &[("train_loss", 2.0), ("test_acc", 0.1)]), (2, &[("train_loss", 0.5), ("test_acc", 0.8)])],
        )
        .await;
    assert_eq!(r.unwrap().rows_added, 4);
    let r = agent.report(lease.lease_id, &[(1, &[("train_loss", 1.0), ("test_acc", 0.5)])]).await;
    assert_eq!(r.unwrap().rows_added, 2);
    assert_eq!(agent.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");

    let got = c.get("flow").await;
    let summary = got.summary.unwrap();
    let counts = summary.counts.unwrap();
    assert_eq!((counts.succeeded, counts.pending, counts.running, summary.total, summary.done), (1, 1, 0, 2, false));
    assert_eq!((got.trials[0].state.as_str(), got.trials[0].attempt), ("succeeded", 1));

    let results = c
        .sweeps
        .clone()
        .get_results(sweep_proto::v1::GetResultsRequest { sweep_id: "flow".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(results.trials.len(), 2);
    let done = &results.trials[0];
    assert_eq!((done.trial_id.as_str(), done.status.as_str(), done.attempts), (first_id.as_str(), "succeeded", 1));
    let params: Value = serde_json::from_str(&done.params_json).unwrap();
    assert_eq!(params["width"], 1);
    assert_eq!(done.finals.len(), 2);
    assert_eq!(done.finals["train_loss"], 0.5);
    assert_eq!(done.finals["test_acc"], 0.8);
    assert!(done.started_at_ms > 0 && done.finished_at_ms >= done.started_at_ms, "{done:?}");
    let waiting = &results.trials[1];
    assert_eq!((waiting.status.as_str(), waiting.finished_at_ms), ("pending", 0));
    assert!(waiting.finals.is_empty());
}

#[tokio::test]
async fn an_expired_lease_is_fenced_off_and_the_trial_is_retried_as_attempt_2() {
    let env = Env::new(SHORT_TTL);
    let c = env.start().await;
    c.submit(sweep("fence", &[1], "")).await.unwrap();
    let mut zombie = c.agent("zombie", 1).await;
    let old = zombie.lease_one().await;
    assert_eq!(zombie.report(old.lease_id, &[(0, &[("loss", 1.0)])]).await.unwrap().rows_added, 1);

    // No heartbeats: the reaper returns the trial to the queue after the TTL.
    eventually("the expired trial to be pending again", || async {
        let t = c.trial_states("fence").await;
        (t[0].1 == "pending").then_some(())
    })
    .await;
    // What the expired attempt trained is still recorded, under its own attempt: a retry may
    // resume from a checkpoint that already holds these epochs.
    assert_eq!(zombie.report(old.lease_id, &[(1, &[("loss", 0.5)])]).await.unwrap().rows_added, 1);

    let mut next = c.agent("next", 1).await;
    let new = next.lease_one().await;
    assert_eq!(new.attempt, 2, "a lost lease is retried as attempt + 1");
    assert_ne!(new.lease_id, old.lease_id);
    assert_eq!(c.trial_states("fence").await[0].2, 2);

    assert_eq!(zombie.report(old.lease_id, &[(1, &[("loss", 0.5)])]).await.unwrap().rows_duplicate, 1);
    assert_status(zombie.exit(old.lease_id, 0, "").await, Code::FailedPrecondition, &old.lease_id.to_string());
    assert_eq!(action(&zombie.heartbeat(old.lease_id, true).await), LeaseAction::Abandon);

    // The zombie cannot change the trial's state; the current lease still works.
    assert_eq!(action(&next.heartbeat(new.lease_id, true).await), LeaseAction::Continue);
    assert_eq!(next.exit(new.lease_id, 0, "").await.unwrap(), "succeeded");
    c.running.flush().await.unwrap();
    let rows = env.parquet_metrics("fence");
    let keys: Vec<_> = rows.iter().map(|r| (r.attempt, r.epoch)).collect();
    assert_eq!(keys, [(1, 0), (1, 1)], "the first attempt's rows, each once, under attempt 1");
    assert_status(zombie.report(999_999, &[]).await, Code::FailedPrecondition, "999999");
}

#[tokio::test]
async fn a_retried_metric_report_is_stored_once_in_parquet() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("dedup", &[1], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    let epochs: &[(u32, &[(&str, f64)])] =
        &[(0, &[("train_loss", 1.0), ("test_acc", 0.2)]), (1, &[("train_loss", 0.7), ("test_acc", 0.4)])];

    let first = agent.report(lease.lease_id, epochs).await.unwrap();
    assert_eq!((first.rows_added, first.rows_duplicate), (4, 0));
    let again = agent.report(lease.lease_id, epochs).await.unwrap();
    assert_eq!((again.rows_added, again.rows_duplicate), (0, 4));
    c.running.flush().await.unwrap();

    // A report that overlaps what is already written: only epoch 2 is new.
    let overlap = agent
        .report(lease.lease_id, &[(1, &[("train_loss", 0.7)]), (2, &[("train_loss", 0.5), ("test_acc", 0.6)])])
        .await
        .unwrap();
    assert_eq!((overlap.rows_added, overlap.rows_duplicate), (2, 1));
    agent.report(lease.lease_id, epochs).await.unwrap();
    c.running.flush().await.unwrap();

    let rows = env.parquet_metrics("dedup");
    assert_eq!(rows.len(), 6, "3 epochs x 2 metrics: {rows:?}");
    assert!(rows.iter().all(|r| r.sweep == "dedup" && r.attempt == 1 && r.step == r.epoch as i64 * 10));
    let loss1 = rows.iter().find(|r| r.epoch == 1 && r.metric == "train_loss").unwrap();
    assert_eq!(loss1.value, 0.7);
}

#[tokio::test]
async fn failures_retry_up_to_max_attempts_then_fail_with_the_stderr_tail() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("retry", &[1], "[retry]\nmax_attempts = 2\nbackoff = \"0s\"")).await.unwrap();
    let mut agent = c.agent("a", 1).await;

    let first = agent.lease_one().await;
    agent.heartbeat(first.lease_id, true).await;
    assert_eq!(agent.exit(first.lease_id, 1, "warming up\nsegfault in step 3").await.unwrap(), "pending");
    let t = &c.get("retry").await.trials[0];
    assert_eq!((t.state.as_str(), t.attempt), ("pending", 1));

    let second = agent.lease_one().await;
    assert_eq!(second.attempt, 2);
    assert_eq!(agent.exit(second.lease_id, 3, "RuntimeError: CUDA out of memory").await.unwrap(), "failed");
    let t = &c.get("retry").await.trials[0];
    assert_eq!((t.state.as_str(), t.attempt), ("failed", 2));
    assert!(
        t.last_error.contains("CUDA out of memory") && t.last_error.contains("exit code 3"),
        "last_error: {}",
        t.last_error
    );
    assert!(c.get("retry").await.summary.unwrap().done);
    assert!(agent.lease(1, 0).await.is_empty(), "a failed trial is not leased again");
}

#[tokio::test]
async fn exit_code_78_fails_at_once_as_a_bad_configuration() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("badcfg", &[1], "[retry]\nmax_attempts = 3")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    let code = sweep_spec::trial::EXIT_BAD_CONFIG;
    assert_eq!(code, 78);
    assert_eq!(agent.exit(lease.lease_id, code, "unknown optimizer `adamw`").await.unwrap(), "failed");
    let t = &c.get("badcfg").await.trials[0];
    assert_eq!((t.state.as_str(), t.attempt), ("failed", 1));
    assert!(t.last_error.contains("unknown optimizer"), "last_error: {}", t.last_error);
    assert!(agent.lease(1, 0).await.is_empty());
}

#[tokio::test]

async fn a_huge_free_slots_value_leases_every_pending_trial() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("many", &[1, 2], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    // The largest request the coordinator takes; beyond it the request is refused, not wrapped.
    assert_eq!(agent.lease(sweep_coordinator::limits::MAX_SLOTS, 0).await.len(), 2);
    let too_many = pb::LeaseRequest { free_slots: 1 << 30, ..agent.lease_request() };
    assert_status(agent.client.lease(too_many).await, Code::InvalidArgument, "free_slots");
}

/// A double-descent sweep over (width, seed, lr) with `fuse = 3`: the trials that differ only in
/// seed and learning rate leave in groups of up to three, one slot per group; other widths never
/// share a group; each member keeps its own lease.
#[tokio::test]
async fn fused_trials_are_leased_in_groups_of_the_same_model() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let grid = "[grid]\nwidth = [8, 16]\nseed = [0, 1]\noptimizer = [{ name = \"sgd\", lr = 0.1 }, { name = \"sgd\", lr = 0.05 }]";
    c.submit(preact_sweep("fused", &format!("{grid}\n[resources]\nfuse = 3"))).await.unwrap();
    let mut agent = c.agent("a", 8).await;

    let width = |l: &pb::Lease| -> i64 {
        let params: Value = serde_json::from_str(&l.trial.as_ref().unwrap().params_json).unwrap();
        params["width"].as_i64().unwrap()
    };
    // In queue order (width slowest): three width-8 trials as a group, then the fourth alone (no
    // width-8 partner is left); each group or lone trial takes one slot.
    let first = agent.lease(2, 0).await;
    let second = agent.lease(2, 0).await;
    let third = agent.lease(2, 0).await;
    assert_eq!((first.len(), second.len()), (4, 4), "{first:?}\n{second:?}");
    assert!(third.is_empty());
    for leases in [&first, &second] {
        let (group, alone): (Vec<&pb::Lease>, Vec<&pb::Lease>) = leases.iter().partition(|l| l.group != 0);
        assert_eq!((group.len(), alone.len()), (3, 1), "{leases:?}");
        assert_eq!(group[0].lease_id, group[0].group, "a group is named by its first member's lease");
        assert!(group.iter().all(|l| l.group == group[0].group && width(l) == width(group[0])));
        let ids: std::collections::BTreeSet<i64> = group.iter().map(|l| l.lease_id).collect();
        assert_eq!(ids.len(), 3, "each member has its own lease");
        assert_eq!(group[0].trial.as_ref().unwrap().fuse, "3");
        assert_eq!(width(alone[0]), width(group[0]));
    }
    assert_ne!(width(&first[0]), width(&second[0]));
}

/// A multi-GPU agent asking for four groups of sixteen gets four, though each group's partners
/// come from further down the queue than the rows first read.
#[tokio::test]
async fn one_lease_fills_every_free_slot_with_a_whole_group() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let seeds: Vec<String> = (0..100).map(|s| s.to_string()).collect();
    let tables = format!("[grid]\nseed = [{}]\n[resources]\ngpus = 1\nfuse = 16", seeds.join(", "));
    c.submit(preact_sweep("wide", &tables)).await.unwrap();
    let mut agent = c.agent("a", 4).await;
    let leases = agent.lease(4, 4).await;
    assert_eq!(group_sizes(&leases), vec![16; 4], "{leases:?}");
    assert_eq!(c.counts("wide").await.pending, 36);
}

/// A fused group whose process fails as a whole (say one member's checkpoint is unreadable) comes
/// back in halves without using an attempt, down to each trial alone, where a failure is the
/// trial's own: the faulty trial fails and the others are free to succeed. A member failing for
/// its own reason inside a group (dropped) uses its attempt as any failure does.
#[tokio::test]
async fn a_failed_group_is_retried_in_halves_until_the_faulty_trial_is_alone() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(preact_sweep("broken", FOUR_FUSED_ONE_ATTEMPT)).await.unwrap();
    let mut agent = c.agent("a", 4).await;
    let group_exit = |lease_id| pb::CompleteRequest {
        lease_id,
        exit_code: Some(1),
        stderr_tail: "error: checkpoint/latest/model.safetensors: cannot read".into(),
        whole_group: true,
        ..Default::default()
    };
    for (round, expected) in [vec![4], vec![2, 2]].into_iter().enumerate() {
        let leases = agent.lease(4, 4).await;
        assert_eq!(group_sizes(&leases), expected, "round {round}: {leases:?}");
        for l in &leases {
            assert_eq!(agent.complete(group_exit(l.lease_id)).await.unwrap(), "pending", "round {round}");
        }
    }
    // Alone: the faulty trial fails on its own attempt; the others succeed.
    let alone = agent.lease(4, 4).await;
    assert_eq!(alone.len(), 4);
    assert!(alone.iter().all(|l| l.group == 0), "{alone:?}");
    assert_eq!(agent.exit(alone[0].lease_id, 1, "cannot read its checkpoint").await.unwrap(), "failed");
    for l in &alone[1..] {
        assert_eq!(agent.exit(l.lease_id, 0, "").await.unwrap(), "succeeded");
    }
    let counts = c.counts("broken").await;
    assert_eq!((counts.succeeded, counts.failed), (3, 1));
    // The agent was not quarantined by the group failures: it leased every round above.

    // In a group, a member failing on its own (not `whole_group`) uses its attempt.
    c.submit(preact_sweep("dropped", FOUR_FUSED_ONE_ATTEMPT)).await.unwrap();
    let group = agent.lease(4, 4).await;
    assert_eq!(group.len(), 4);
    assert_eq!(agent.exit(group[0].lease_id, 1, "diverged in epoch 1").await.unwrap(), "failed");
}

/// `fuse = "auto"` starts at 16 members; once a group has reported its peak GPU memory, later
/// groups are sized to the memory free on the agent's GPU at that much per member (with 10% left
/// over), up to 16.
#[tokio::test]
async fn auto_groups_are_sized_to_the_free_gpu_memory_once_a_group_reported_its_peak() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let seeds: Vec<String> = (0..40).map(|s| s.to_string()).collect();
    let tables = format!("[grid]\nseed = [{}]\n[resources]\ngpus = 1\nfuse = \"auto\"", seeds.join(", "));
    c.submit(preact_sweep("sized", &tables)).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let (base, client) = (agent.lease_request(), agent.client.clone());
    let gib = |n: u64| n << 30;
    let lease_with = |free: u64| {
        let req = pb::LeaseRequest {
            free_slots: 1,
            free_gpus: 1,
            gpu_free_shares: vec![1.0],
            gpu_free_bytes: vec![free],
            ..base.clone()
        };
        let mut client = client.clone();
        async move { client.lease(req).await.unwrap().into_inner().leases }
    };
    let first = lease_with(gib(80)).await;
    assert_eq!(first.len(), 16, "no group has reported yet: auto's 16");
    for l in &first {
        // The group of 16 peaked at 16 GiB: 1 GiB a member.
        agent.report(l.lease_id, &[(1, &[("gpu_mem_peak_bytes", gib(16) as f64)])]).await.unwrap();
        assert_eq!(agent.exit(l.lease_id, 0, "").await.unwrap(), "succeeded");
    }
    assert_eq!(lease_with(gib(10)).await.len(), 9, "10 GiB free, 90% of it at 1 GiB a member");
    assert_eq!(lease_with(gib(80)).await.len(), 15, "the 15 left, under auto's 16");
}

/// A shared trial (`gpu_share`) goes to a GPU with its share left and, once an earlier attempt
/// reported its peak memory, only to a GPU with that much memory free.
#[tokio::test]
async fn shared_trials_need_their_share_and_the_memory_they_used_before() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("packed", &[1], "[resources]\ngpu_share = 0.5\n[retry]\nbackoff = \"0s\"")).await.unwrap();
    let mut agent = c.agent("a", 4).await;
    let base = agent.lease_request();
    let rooms = |shares: &[f64], free_bytes: &[u64]| pb::LeaseRequest {
        free_slots: 4,
        free_gpus: shares.iter().filter(|s| **s >= 1.0).count() as u32,
        gpu_free_shares: shares.to_vec(),
        gpu_free_bytes: free_bytes.to_vec(),
        ..base.clone()
    };
    let client = agent.client.clone();
    let lease = |req| {
        let mut client = client.clone();
        async move { client.lease(req).await.unwrap().into_inner().leases }
    };
    assert!(lease(rooms(&[0.25], &[])).await.is_empty(), "a quarter left is not half a GPU");
    let first = lease(rooms(&[1.0], &[])).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].trial.as_ref().unwrap().gpu_share, 0.5);
    // The attempt peaked at 6 GiB, then failed.
    let peak = (6u64 << 30) as f64;
    agent.report(first[0].lease_id, &[(1, &[("gpu_mem_peak_bytes", peak)])]).await.unwrap();
    agent.exit(first[0].lease_id, 1, "crashed").await.unwrap();
    assert!(lease(rooms(&[1.0], &[4 << 30])).await.is_empty(), "4 GiB free is too little for a 6 GiB trial");
    let again = lease(rooms(&[0.5, 1.0], &[8 << 30, 2 << 30])).await;
    assert_eq!(again.len(), 1, "8 GiB free on the half-used GPU is enough");
    assert_eq!(again[0].attempt, 2);
}

/// A fused group that runs out of GPU memory comes back in halves: a group of four, then pairs,
/// then each trial alone. The group's size was the coordinator's choice, so only the out-of-memory
/// alone counts against `max_attempts` (1 here), and none of them counts against the agent.
#[tokio::test]
async fn a_group_out_of_gpu_memory_is_retried_in_halves() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(preact_sweep("oom", FOUR_FUSED_ONE_ATTEMPT)).await.unwrap();
    // One agent throughout: eight group failures in a row do not quarantine it.
    let mut agent = c.agent("a", 4).await;
    for (round, expected) in [vec![4], vec![2, 2], vec![1, 1, 1, 1]].into_iter().enumerate() {
        let leases = agent.lease(4, 4).await;
        assert_eq!(group_sizes(&leases), expected, "round {round}: {leases:?}");
        for l in &leases {
            agent
                .exit(l.lease_id, 1, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
                .await
                .unwrap();
        }
        let counts = c.counts("oom").await;
        let alone = expected[0] == 1;
        assert_eq!((counts.pending, counts.failed), if alone { (0, 4) } else { (4, 0) }, "round {round}");
    }
    let trials = c.get("oom").await.trials;
    assert!(trials.iter().all(|t| t.attempt == 3), "{trials:?}");
}

/// Once a group of some size ran out of memory, later groups of the same model and width start
/// at half that size instead of finding out again; trials of another width are not held back.
#[tokio::test]
async fn later_groups_start_at_the_size_that_fit() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let tables = "[grid]\nwidth = [8, 16]\nseed = [0, 1, 2, 3, 4, 5, 6, 7]\n[resources]\ngpus = 1\nfuse = 4\n\
                  [retry]\nmax_attempts = 1\nbackoff = \"0s\"";
    c.submit(preact_sweep("learn", tables)).await.unwrap();
    let mut a = c.agent("a", 1).await;
    // Width 8 (the grid's first axis): four do not fit, two do.
    assert_eq!(next_group(&mut a, 4, false).await, ["8"]);
    assert_eq!(next_group(&mut a, 2, true).await, ["8"]);
    assert_eq!(next_group(&mut a, 2, true).await, ["8"]);
    // Seeds 4-7 never ran out of memory, yet go in pairs.
    assert_eq!(next_group(&mut a, 2, true).await, ["8"]);
    assert_eq!(next_group(&mut a, 2, true).await, ["8"]);
    // Width 16 is another key: it starts at the full size again.
    assert_eq!(next_group(&mut a, 4, true).await, ["16"]);
    assert_eq!(c.counts("learn").await.failed, 0, "no trial used its one attempt on a group's size");
}

/// Leases one candidate, checks its size, ends every member (succeeding, or out of GPU memory) and
/// returns the widths it held.
/// Four seeds fused as one group, each with a single attempt and no backoff between retries.
const FOUR_FUSED_ONE_ATTEMPT: &str =
    "[grid]\nseed = [0, 1, 2, 3]\n[resources]\ngpus = 1\nfuse = 4\n[retry]\nmax_attempts = 1\nbackoff = \"0s\"";

/// The sizes of the groups among `leases`, in group order; a lease outside any group (group 0) is
/// a group of one.
fn group_sizes(leases: &[pb::Lease]) -> Vec<usize> {
    let mut sizes: std::collections::BTreeMap<i64, usize> = Default::default();
    for l in leases {
        *sizes.entry(if l.group == 0 { l.lease_id } else { l.group }).or_default() += 1;
    }
    sizes.into_values().collect()
}

async fn next_group(agent: &mut Agent, expected: usize, ok: bool) -> Vec<String> {
    let leases = agent.lease(1, 1).await;
    assert_eq!(leases.len(), expected, "{leases:?}");
    let mut widths = std::collections::BTreeSet::new();
    for l in &leases {
        let params: serde_json::Value = serde_json::from_str(&l.trial.as_ref().unwrap().params_json).unwrap();
        widths.insert(params["width"].to_string());
        let (code, stderr) = if ok { (0, "") } else { (1, "torch.OutOfMemoryError: CUDA out of memory.") };
        agent.exit(l.lease_id, code, stderr).await.unwrap();
    }
    widths.into_iter().collect()
}

/// A double-descent sweep of preact-ResNet-18, the model that fuses; `tables` follow `[params]`.
fn preact_sweep(name: &str, tables: &str) -> pb::SubmitSweepRequest {
    submission(format!(
        "name = \"{name}\"\nworkload = \"double_descent\"\n[data]\nformat = \"cifar10\"\npath = \"cifar\"\n\
         [params]\nmodel = \"preact_resnet18\"\n{tables}\n"
    ))
}

#[tokio::test]
async fn an_agent_dedicated_to_one_sweep_leases_only_its_trials() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("older", &[1, 2], "")).await.unwrap();
    c.submit(sweep("mine", &[1], "")).await.unwrap();
    let mut agent = c.agent("local", 2).await;
    let base = agent.lease_request();
    let only = |sweep: &str| pb::LeaseRequest { free_slots: 2, only_sweep: sweep.into(), ..base.clone() };
    let leases = agent.client.lease(only("mine")).await.unwrap().into_inner().leases;
    let sweeps: Vec<_> = leases.iter().map(|l| l.sweep_id.as_str()).collect();
    assert_eq!(sweeps, ["mine"], "the older sweep is served first to everyone else, not to this agent");
    assert!(agent.client.lease(only("mine")).await.unwrap().into_inner().leases.is_empty(), "nothing else of it");
    assert!(
        agent.client.lease(only("nope")).await.unwrap().into_inner().leases.is_empty(),
        "an unknown sweep: no work"
    );
    let refused = agent.client.lease(only("../etc")).await.map(|_| ());
    assert_status(refused, Code::InvalidArgument, "only_sweep");
    assert_eq!(agent.lease(2, 0).await.iter().filter(|l| l.sweep_id == "older").count(), 2, "without it: any sweep");
}
