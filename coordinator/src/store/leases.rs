//! Leases: handing trials to agents, keeping them alive, taking them back, and closing attempts.
//! The lease id is the `attempts` row id: increasing, never reused, and the fencing token that
//! every write from an agent must carry.

use super::sweeps::{bump_trials_version, parse_spec, sweep_policy};
use super::{counters_at, Store};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Counters, Event, Exit, TrialState};
use crate::scheduler::{self, Candidate, GpuRoom, LeaseVerdict};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::HashSet;
use sweep_spec::TrialSpec;

/// A trial handed to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub lease_id: i64,
    pub attempt: u32,
    pub deadline_ms: i64,
    pub spec: TrialSpec,
    /// Grants of one fused group share the first member's lease id; 0 alone.
    pub group: i64,
}

/// An agent's view of one of its leases, sent with each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseReport {
    pub lease_id: i64,
    pub running: bool,
}

/// How an attempt ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: String,
    pub launch_error: String,
    pub stopped_by_request: bool,
    /// Handed back by a draining agent: not a failure of the trial.
    pub released: bool,
    /// The exit of a fused group's process, not known to be this member's own.
    pub whole_group: bool,
}

/// What PyTorch and libtorch print when a GPU runs out of memory.
const OUT_OF_MEMORY_MARKERS: &[&str] = &["CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory"];

impl Completion {
    fn exit(&self) -> Exit {
        match (self.exit_code, self.signal) {
            _ if self.stopped_by_request => Exit::StoppedOnRequest,
            _ if !self.launch_error.is_empty() => Exit::Failure,
            (Some(0), None) => Exit::Success,
            (Some(sweep_spec::trial::EXIT_BAD_CONFIG), None) => Exit::BadConfig,
            _ if OUT_OF_MEMORY_MARKERS.iter().any(|m| self.stderr_tail.contains(m)) => Exit::OutOfMemory,
            _ => Exit::Failure,
        }
    }

    /// The error recorded with the attempt, or None for a success.
    fn error(&self) -> Option<String> {
        let cause = if !self.launch_error.is_empty() {
            format!("could not start: {}", self.launch_error)
        } else if let Some(sig) = self.signal {
            format!("killed by signal {sig}")
        } else {
            match self.exit_code {
                Some(0) => return None,
                Some(code) => format!("exit code {code}"),
                None => "ended without an exit status".to_string(),
            }
        };
        let tail = self.stderr_tail.trim();
        Some(if tail.is_empty() { cause } else { format!("{cause}: {tail}") })
    }
}

/// The trial a lease belongs to, and whether it is still that trial's lease.
struct Holder {
    sweep: String,
    trial_id: String,
    state: TrialState,
    counters: Counters,
    current_lease: Option<i64>,
}

impl Store {
    /// Hands out up to `free_slots` pending trials of active sweeps, oldest sweep first, within
    /// what is left of the agent's GPUs (`gpus`, one room per GPU).
    pub fn lease(
        &mut self,
        agent_id: &str,
        free_slots: u32,
        mut gpus: Vec<GpuRoom>,
        now_ms: i64,
    ) -> Result<Vec<Grant>> {
        // GPUs with any room left: no pending trial needing more is worth reading.
        let free_gpus = gpus.iter().filter(|g| g.share > 0.0).count() as u32;
        let ttl = self.lease_ttl_ms;
        let tx = self.conn.transaction()?;
        let streak = touch_agent(&tx, agent_id, now_ms)?;
        if free_slots == 0 || scheduler::is_quarantined(streak, self.quarantine_after) {
            tx.commit()?;
            return Ok(Vec::new());
        }
        // Candidates, sweep by sweep, oldest first: each query walks the (state, sweep, idx) index
        // in order and stops at the limit, instead of sorting every pending trial of every sweep.
        // Fused sweeps (`[resources] fuse`) lease in groups: a pending trial and the partners it
        // can train with are one candidate, taking one slot. Partners come from further down the
        // queue, so a sweep is read page by page until there are enough candidates.
        let want = free_slots.saturating_mul(4) as usize;
        let active: Vec<String> = {
            let mut q = tx.prepare_cached("SELECT name FROM sweeps WHERE state = 'active' ORDER BY seq")?;
            let rows = q.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut taken: HashSet<(String, String)> = HashSet::new();
        let mut groups: Vec<(Option<String>, Vec<Pending>)> = Vec::new();
        // The most memory free on one of the agent's GPUs, where the driver said.
        let most_free = gpus.iter().filter(|g| g.share > 0.0).filter_map(|g| g.free_bytes).max();
        for sweep in active {
            let mut after_idx = -1i64;
            while groups.len() < want {
                let page: Vec<(i64, String, Counters, String)> = {
                    let mut q = tx.prepare_cached(
                        "SELECT idx, trial_id, attempt, user_failures, lost, spec FROM trials
                         WHERE state = 'pending' AND sweep = ?1 AND gpus <= ?2 AND not_before_ms <= ?4 AND idx > ?5
                         ORDER BY idx LIMIT ?3",
                    )?;
                    let limit = (want - groups.len()) as i64;
                    let rows = q.query_map(params![sweep, free_gpus, limit, now_ms, after_idx], |r| {
                        Ok((r.get(0)?, r.get(1)?, counters_at(r, 2)?, r.get(5)?))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let Some(last) = page.last() else { break };
                after_idx = last.0;
                for (_, trial_id, counters, spec) in page {
                    if !taken.insert((sweep.clone(), trial_id.clone())) {
                        continue;
                    }
                    let spec = parse_spec(&spec)?;
                    let (key, partners) = fusion_partners(&tx, &spec, now_ms, most_free, &mut taken)?;
                    groups.push((key, std::iter::once((trial_id, counters, spec)).chain(partners).collect()));
                }
            }
        }
        let candidates: Vec<Candidate> = groups
            .iter()
            .map(|(_, g)| {
                let first = &g[0].2;
                let share = first.resources.gpu_share;
                let memory_bytes = match share {
                    Some(_) => peak_gpu_memory(&tx, &first.sweep, &first.id.0)?,
                    None => None,
                };
                Ok(Candidate { gpus: first.resources.gpus, share, memory_bytes })
            })
            .collect::<Result<_>>()?;
        let deadline_ms = now_ms + ttl;
        let mut grants = Vec::new();
        for i in scheduler::choose(&candidates, free_slots, &mut gpus) {
            let (key, members) = std::mem::take(&mut groups[i]);
            let mut membership = Membership { group: 0, size: members.len(), key: key.as_deref() };
            let mut members = members.into_iter();
            let (trial_id, counters, spec) = members.next().expect("a group has a first member");
            let first = grant(&tx, &trial_id, counters, spec, agent_id, now_ms, deadline_ms, membership)?;
            // A fused group is named by its first member's lease; a trial without partners runs alone.
            membership.group = if membership.size == 1 { 0 } else { first.lease_id };
            grants.push(Grant { group: membership.group, ..first });
            for (trial_id, counters, spec) in members {
                grants.push(grant(&tx, &trial_id, counters, spec, agent_id, now_ms, deadline_ms, membership)?);
            }
        }
        tx.commit()?;
        Ok(grants)
    }

    /// Extends the agent's current leases and marks started trials running. Returns, per lease,
    /// what the agent must do and the new deadline.
    pub fn heartbeat(
        &mut self,
        agent_id: &str,
        leases: &[LeaseReport],
        now_ms: i64,
    ) -> Result<Vec<(i64, LeaseVerdict, i64)>> {
        let deadline = now_ms + self.lease_ttl_ms;
        let tx = self.conn.transaction()?;
        touch_agent(&tx, agent_id, now_ms)?;
        let mut verdicts = Vec::with_capacity(leases.len());
        for lease in leases {
            let Some(h) = holder(&tx, lease.lease_id)? else {
                verdicts.push((lease.lease_id, LeaseVerdict::Abandon, 0));
                continue;
            };
            let verdict = scheduler::judge_lease(h.state, h.current_lease, lease.lease_id);
            if verdict == LeaseVerdict::Extend {
                let mut state = h.state;
                if lease.running && h.state == TrialState::Leased {
                    let policy = sweep_policy(&tx, &h.sweep)?;
                    state = lifecycle::transition(h.state, h.counters, Event::Started, policy)
                        .map_err(|e| Error::Corrupt(e.to_string()))?
                        .0;
                    tx.execute(
                        "UPDATE attempts SET started_at_ms = ?2 WHERE lease_id = ?1",
                        params![lease.lease_id, now_ms],
                    )?;
                    tx.execute(
                        "UPDATE trials SET started_at_ms = COALESCE(started_at_ms, ?3) WHERE sweep = ?1 AND trial_id = ?2",
                        params![h.sweep, h.trial_id, now_ms],
                    )?;
                    bump_trials_version(&tx, &h.sweep)?;
                }
                tx.execute(
                    "UPDATE trials SET state = ?3, deadline_ms = ?4 WHERE sweep = ?1 AND trial_id = ?2",
                    params![h.sweep, h.trial_id, state.as_str(), deadline],
                )?;
            }
            verdicts.push((lease.lease_id, verdict, deadline));
        }
        tx.commit()?;
        Ok(verdicts)
    }

    /// Closes an attempt. Refused unless `lease_id` is still the trial's lease (a compare-and-set
    /// on the trial's current attempt). Returns the trial's state afterwards.
    pub fn complete(&mut self, lease_id: i64, c: &Completion, now_ms: i64) -> Result<TrialState> {
        let tx = self.conn.transaction()?;
        let h = holder(&tx, lease_id)?.ok_or(Error::StaleLease(lease_id))?;
        let policy = sweep_policy(&tx, &h.sweep)?;
        let grouped = attempt_group_size(&tx, lease_id)? > 1;
        let exit = match c.exit() {
            Exit::OutOfMemory if grouped => Exit::GroupOutOfMemory,
            Exit::Failure | Exit::BadConfig if grouped && c.whole_group => Exit::GroupFailure,
            exit => exit,
        };
        let outcome = match exit {
            _ if c.released => "released",
            Exit::Success => "succeeded",
            Exit::Failure => "failed",
            // Both halve the groups the trial joins next (`fusion_partners`).
            Exit::OutOfMemory | Exit::GroupOutOfMemory => "out_of_memory",
            // Halves the groups the trial joins next, as running out of memory does.
            Exit::GroupFailure => "group_failed",
            Exit::BadConfig => "bad_config",
            Exit::StoppedOnRequest => "stopped",
        };
        let error = if c.released { Some("handed back by a draining agent".to_string()) } else { c.error() };
        match scheduler::judge_lease(h.state, h.current_lease, lease_id) {
            LeaseVerdict::Abandon => return Err(Error::StaleLease(lease_id)),
            LeaseVerdict::Stop => {
                // Cancelled while running: the trial stays cancelled; close the attempt for the record.
                close_attempt(&tx, lease_id, "cancelled", c, error.as_deref(), now_ms)?;
                tx.execute(
                    "UPDATE trials SET lease_id = NULL, deadline_ms = NULL WHERE sweep = ?1 AND trial_id = ?2",
                    params![h.sweep, h.trial_id],
                )?;
                tx.commit()?;
                return Ok(TrialState::Cancelled);
            }
            LeaseVerdict::Extend => {}
        }
        let event = if c.released { Event::LeaseLost } else { Event::Exited(exit) };
        let (next, counters) =
            lifecycle::transition(h.state, h.counters, event, policy).map_err(|e| Error::Corrupt(e.to_string()))?;
        close_attempt(&tx, lease_id, outcome, c, error.as_deref(), now_ms)?;
        let finished = next.is_terminal().then_some(now_ms);
        let retried_after_failure = next == TrialState::Pending && counters.user_failures > h.counters.user_failures;
        let not_before = if retried_after_failure {
            scheduler::retry_not_before(
                now_ms,
                counters.user_failures,
                policy.retry_backoff_ms,
                sweep_spec::backoff::jitter_unit(),
            )
        } else {
            0
        };
        tx.execute(
            "UPDATE trials SET state = ?3, user_failures = ?4, lost = ?5, lease_id = NULL, deadline_ms = NULL,
                    finished_at_ms = ?6, last_error = COALESCE(?7, last_error),
                    started_at_ms = COALESCE(started_at_ms, ?8), not_before_ms = ?9
             WHERE sweep = ?1 AND trial_id = ?2",
            params![
                h.sweep,
                h.trial_id,
                next.as_str(),
                counters.user_failures,
                counters.lost,
                finished,
                error,
                now_ms,
                not_before
            ],
        )?;
        if !c.released {
            record_streak(&tx, lease_id, exit)?;
        }
        bump_trials_version(&tx, &h.sweep)?;
        tx.commit()?;
        Ok(next)
    }

    /// Takes back every lease whose deadline has passed. Returns (sweep, trial, attempt, new state).
    pub fn reap_expired(&mut self, now_ms: i64) -> Result<Vec<(String, String, u32, TrialState)>> {
        let tx = self.conn.transaction()?;
        let expired: Vec<(String, String, String, Counters, i64, i64)> = {
            let mut q = tx.prepare_cached(
                "SELECT sweep, trial_id, state, attempt, user_failures, lost, lease_id, deadline_ms
                 FROM trials WHERE state IN ('leased', 'running') AND deadline_ms <= ?1",
            )?;
            let rows = q.query_map([now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, counters_at(r, 3)?, r.get(6)?, r.get(7)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|row| scheduler::is_expired(row.5, now_ms))
                .collect()
        };
        let mut out = Vec::new();
        for (sweep, trial_id, state, counters, lease_id, _) in expired {
            let policy = sweep_policy(&tx, &sweep)?;
            let state: TrialState = state.parse().map_err(Error::Corrupt)?;
            let (next, counters) = lifecycle::transition(state, counters, Event::LeaseLost, policy)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            let error = format!("lease lost (attempt {}): agent stopped heartbeating", counters.attempt);
            tx.execute(
                "UPDATE attempts SET finished_at_ms = ?2, outcome = 'lost', error = ?3 WHERE lease_id = ?1",
                params![lease_id, now_ms, error],
            )?;
            let finished = next.is_terminal().then_some(now_ms);
            tx.execute(
                "UPDATE trials SET state = ?3, lost = ?4, lease_id = NULL, deadline_ms = NULL, finished_at_ms = ?5, last_error = ?6
                 WHERE sweep = ?1 AND trial_id = ?2",
                params![sweep, trial_id, next.as_str(), counters.lost, finished, error],
            )?;
            bump_trials_version(&tx, &sweep)?;
            out.push((sweep, trial_id, counters.attempt, next));
        }
        tx.commit()?;
        Ok(out)
    }

    /// The (sweep, trial, attempt) a lease was granted for, live or not.
    ///
    /// Metric rows are recorded under any attempt that really ran, even after its lease expired:
    /// the epochs it trained may be the very ones the next attempt resumed past (its checkpoint
    /// moved on while the network was down), and refusing them would lose them for good. They land
    /// under their own attempt number, so they can never collide with the retry's rows. Only state
    /// changes (heartbeats, completion) are fenced by the lease.
    pub(super) fn attempt_of_lease(tx: &Transaction, lease_id: i64) -> Result<(String, String, u32)> {
        tx.query_row("SELECT sweep, trial_id, attempt FROM attempts WHERE lease_id = ?1", [lease_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?
        .ok_or(Error::StaleLease(lease_id))
    }
}

/// A pending trial of the sweep being leased from: its id, counters and spec.
type Pending = (String, Counters, TrialSpec);

/// The fused group a grant belongs to: its first member's lease id (0 for that first member and
/// for a trial alone), its size (1 alone) and its fusion key (none alone).
#[derive(Debug, Clone, Copy)]
struct Membership<'a> {
    group: i64,
    size: usize,
    key: Option<&'a str>,
}

/// Leases `trial_id` of `spec.sweep` to `agent_id` as a new attempt.
#[allow(clippy::too_many_arguments)]
fn grant(
    tx: &Transaction,
    trial_id: &str,
    counters: Counters,
    spec: TrialSpec,
    agent_id: &str,
    now_ms: i64,
    deadline_ms: i64,
    membership: Membership<'_>,
) -> Result<Grant> {
    let sweep = &spec.sweep;
    let policy = sweep_policy(tx, sweep)?;
    let (state, counters) = lifecycle::transition(TrialState::Pending, counters, Event::Leased, policy)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let fusion_key = if membership.size > 1 { membership.key } else { None };
    tx.execute(
        "INSERT INTO attempts (sweep, trial_id, attempt, agent, leased_at_ms, group_size, fusion_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![sweep, trial_id, counters.attempt, agent_id, now_ms, membership.size as i64, fusion_key],
    )?;
    let lease_id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE trials SET state = ?3, attempt = ?4, lease_id = ?5, agent = ?6, deadline_ms = ?7
         WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id, state.as_str(), counters.attempt, lease_id, agent_id, deadline_ms],
    )?;
    bump_trials_version(tx, sweep)?;
    Ok(Grant { lease_id, attempt: counters.attempt, deadline_ms, spec, group: membership.group })
}

/// The fusion key of `first` and the pending trials of its sweep that can train fused with it
/// (`sweep_spec::fusion`), up to the group size its `[resources] fuse` allows, in queue order;
/// each is added to `taken`. A group that ran out of GPU memory, or whose process failed as a
/// whole, comes back in halves: every such attempt of a trial halves the groups it joins, down to
/// the trial alone (where a failure is its own); and no group of the same key is formed again at a
/// size that ran out of memory before, so later trials start at the size that fits. Once a group
/// of the key has reported its peak GPU memory, a group is also no larger than `most_free` bytes
/// (the agent's emptiest GPU) hold at that much per member, so on GPUs of different sizes each
/// gets the group it fits.
fn fusion_partners(
    tx: &Transaction,
    first: &TrialSpec,
    now_ms: i64,
    most_free: Option<u64>,
    taken: &mut HashSet<(String, String)>,
) -> Result<(Option<String>, Vec<Pending>)> {
    let members = first.resources.fuse.members(first.resources.gpus);
    let group_size = |trial_id: &str| -> Result<usize> {
        let halvings: u32 = tx.query_row(
            "SELECT COUNT(*) FROM attempts WHERE sweep = ?1 AND trial_id = ?2
             AND outcome IN ('out_of_memory', 'group_failed')",
            params![first.sweep, trial_id],
            |r| r.get(0),
        )?;
        Ok(members.checked_shr(halvings).unwrap_or(0).max(1) as usize)
    };
    let Some(key) = (members > 1).then(|| sweep_spec::fusion::key(first).ok()).flatten() else {
        return Ok((None, Vec::new()));
    };
    let smallest_oom: Option<i64> = tx.query_row(
        "SELECT MIN(group_size) FROM attempts WHERE sweep = ?1 AND fusion_key = ?2 AND outcome = 'out_of_memory'",
        params![first.sweep, key],
        |r| r.get(0),
    )?;
    let fits = smallest_oom.map_or(usize::MAX, |n| (n as usize / 2).max(1));
    let fits_memory = match most_free {
        Some(free) => member_gpu_memory(tx, &first.sweep, &key)?
            .map_or(usize::MAX, |per_member| ((free as f64 * MEMORY_HEADROOM / per_member) as usize).max(1)),
        None => usize::MAX,
    };
    let want = group_size(&first.id.0)?.min(fits).min(fits_memory) - 1;
    if want == 0 {
        return Ok((None, Vec::new()));
    }
    let mut q = tx.prepare_cached(
        "SELECT trial_id, attempt, user_failures, lost, spec FROM trials
         WHERE state = 'pending' AND sweep = ?1 AND not_before_ms <= ?2 ORDER BY idx LIMIT ?3",
    )?;
    // Members usually sit next to each other in the queue (a seed or learning-rate axis); look
    // a few groups ahead.
    let rows = q.query_map(params![first.sweep, now_ms, (want as i64 + 1) * FUSION_LOOKAHEAD], |r| {
        Ok((r.get::<_, String>(0)?, counters_at(r, 1)?, r.get::<_, String>(4)?))
    })?;
    let mut partners = Vec::new();
    for row in rows {
        if partners.len() == want {
            break;
        }
        let (trial_id, counters, spec) = row?;
        if taken.contains(&(first.sweep.clone(), trial_id.clone())) {
            continue;
        }
        let spec = parse_spec(&spec)?;
        if sweep_spec::fusion::key(&spec).is_ok_and(|k| k == key) && group_size(&trial_id)? > want {
            taken.insert((first.sweep.clone(), trial_id.clone()));
            partners.push((trial_id, counters, spec));
        }
    }
    Ok((Some(key), partners))
}

/// The share of GPU memory a fused group may plan to use: the rest is left for the CUDA context,
/// cuDNN's workspace and the allocator's slack.
const MEMORY_HEADROOM: f64 = 0.9;

/// The most GPU memory one member of a group of `key` needed: the peak its groups reported
/// (`gpu_mem_peak_bytes` of their last epochs) over their size. None before any group reported.
fn member_gpu_memory(tx: &Transaction, sweep: &str, key: &str) -> Result<Option<f64>> {
    let bytes: Option<f64> = tx.query_row(
        "SELECT MAX(f.value / a.group_size) FROM attempts a JOIN finals f
           ON f.sweep = a.sweep AND f.trial_id = a.trial_id AND f.metric = 'gpu_mem_peak_bytes'
          AND f.attempt = a.attempt
         WHERE a.sweep = ?1 AND a.fusion_key = ?2",
        params![sweep, key],
        |r| r.get(0),
    )?;
    Ok(bytes.filter(|b| b.is_finite() && *b > 0.0))
}

/// How many trials the attempt under `lease_id` trained with in one group (1: alone).
fn attempt_group_size(tx: &Transaction, lease_id: i64) -> Result<i64> {
    Ok(tx.query_row("SELECT group_size FROM attempts WHERE lease_id = ?1", [lease_id], |r| r.get(0))?)
}

/// The most GPU memory a trial's earlier attempts reported (`gpu_mem_peak_bytes`), if any did.
fn peak_gpu_memory(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<Option<u64>> {
    let peak: Option<f64> = tx.query_row(
        "SELECT MAX(value) FROM metrics WHERE sweep = ?1 AND trial_id = ?2 AND metric = 'gpu_mem_peak_bytes'",
        params![sweep, trial_id],
        |r| r.get(0),
    )?;
    Ok(peak.filter(|p| p.is_finite() && *p > 0.0).map(|p| p as u64))
}

/// How many group sizes ahead in a sweep's queue the coordinator looks for fusion partners.
const FUSION_LOOKAHEAD: i64 = 8;

fn holder(tx: &Transaction, lease_id: i64) -> Result<Option<Holder>> {
    let row = tx
        .query_row(
            "SELECT t.sweep, t.trial_id, t.state, t.attempt, t.user_failures, t.lost, t.lease_id
             FROM attempts a JOIN trials t ON t.sweep = a.sweep AND t.trial_id = a.trial_id
             WHERE a.lease_id = ?1",
            [lease_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    counters_at(r, 3)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            },
        )
        .optional()?;
    row.map(|(sweep, trial_id, state, counters, current_lease)| {
        Ok(Holder { sweep, trial_id, state: state.parse().map_err(Error::Corrupt)?, counters, current_lease })
    })
    .transpose()
}

fn close_attempt(
    tx: &Transaction,
    lease_id: i64,
    outcome: &str,
    c: &Completion,
    error: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE attempts SET finished_at_ms = ?2, outcome = ?3, exit_code = ?4, signal = ?5, error = ?6 WHERE lease_id = ?1",
        params![lease_id, now_ms, outcome, c.exit_code, c.signal, error],
    )?;
    Ok(())
}

/// An agent's run of failed attempts: failures of the trial's code, OOM or a process that could
/// not start lengthen it; a success ends it. Bad configurations, stops and groups out of memory say
/// nothing about the node.
fn record_streak(tx: &Transaction, lease_id: i64, exit: Exit) -> Result<()> {
    let update = match exit {
        Exit::Failure | Exit::OutOfMemory => "consecutive_failures = consecutive_failures + 1",
        Exit::Success => "consecutive_failures = 0",
        // A fused group too large for the GPU says nothing about the node either.
        Exit::BadConfig | Exit::StoppedOnRequest | Exit::GroupOutOfMemory | Exit::GroupFailure => return Ok(()),
    };
    tx.execute(
        &format!("UPDATE agents SET {update} WHERE id = (SELECT agent FROM attempts WHERE lease_id = ?1)"),
        [lease_id],
    )?;
    Ok(())
}

/// Marks the agent as heard from now; returns its current run of failed attempts.
fn touch_agent(tx: &Transaction, agent_id: &str, now_ms: i64) -> Result<u32> {
    tx.query_row(
        "UPDATE agents SET last_seen_ms = ?2 WHERE id = ?1 RETURNING consecutive_failures",
        params![agent_id, now_ms],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::UnknownAgent(agent_id.to_string()))
}
