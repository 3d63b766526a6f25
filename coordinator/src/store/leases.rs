//! Leases: handing trials to agents, keeping them alive, taking them back, and closing attempts.
//! The lease id is the `attempts` row id: increasing, never reused, and the fencing token that
//! every write from an agent must carry.

use super::queue::{self, Group, Pending, Room};
use super::sessions::{admit_agent, admit_lease_holder};
use super::sweeps::sweep_policy;
use super::{counters_at, Store};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Completion, Counters, Event, Exit, TrialState};
use crate::scheduler::{self, Candidate, GpuRoom, LeaseVerdict, Streak};
use crate::session::SessionHash;
use rusqlite::{params, OptionalExtension, Transaction};
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
    /// The last epoch this attempt trains: its trial's budget under a promoting schedule.
    pub stop_after: Option<u32>,
    /// Under PBT: the agent keeps the checkpoint the attempt ends with at `stop_after`.
    pub keep_checkpoint: bool,
}

/// What a lease request gets: its grants, and why there are none when the agent is quarantined.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeaseAnswer {
    pub grants: Vec<Grant>,
    /// The agent is quarantined, for this reason (`scheduler::blames_node`): it gets no leases.
    pub quarantine: Option<String>,
}

/// An agent's view of one of its leases, sent with each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseReport {
    pub lease_id: i64,
    pub running: bool,
}

/// The trial a lease belongs to, whether it is still that trial's lease, and the agent it was
/// granted to.
pub(super) struct Holder {
    pub sweep: String,
    pub trial_id: String,
    pub state: TrialState,
    pub counters: Counters,
    pub current_lease: Option<i64>,
    pub agent: String,
}

impl Store {
    /// Hands out up to `free_slots` pending trials of active sweeps, oldest sweep first, within
    /// what is left of the agent's GPUs (`gpus`, one room per GPU). `session` must be the agent's.
    /// A quarantined agent gets none; whether it is is decided here, from its failures
    /// (`blame::quarantine`).
    pub fn lease(
        &mut self,
        agent_id: &str,
        session: &SessionHash,
        free_slots: u32,
        mut gpus: Vec<GpuRoom>,
        only_sweep: Option<&str>,
        now_ms: i64,
    ) -> Result<LeaseAnswer> {
        let room = Room {
            candidates: scheduler::candidates_to_read(free_slots),
            gpus: scheduler::gpus_with_room(&gpus),
            most_free: scheduler::most_free_bytes(&gpus),
            only_sweep: only_sweep.map(str::to_string),
        };
        let ttl = self.lease_ttl_ms;
        let tx = self.conn.transaction()?;
        let streak = admit_agent(&tx, agent_id, session, now_ms)?;
        tx.execute(
            "UPDATE agents SET gpu_room = ?2, gpu_room_at_ms = ?3 WHERE id = ?1",
            params![agent_id, super::agents::rooms_to_json(&gpus), now_ms],
        )?;
        let quarantine = super::blame::quarantine(&tx, agent_id, streak, self.quarantine_after, now_ms)?;
        if free_slots == 0 || quarantine.is_some() {
            tx.commit()?;
            return Ok(LeaseAnswer { grants: Vec::new(), quarantine });
        }
        // TPE sweeps propose their next trials now, from what their trials reported so far, as
        // many as the free slots their queued trials leave.
        for sweep in super::proposals::open_plans(&tx, only_sweep)? {
            let queued: u32 =
                tx.query_row("SELECT COUNT(*) FROM trials WHERE sweep = ?1 AND state = 'pending'", [&sweep], |r| {
                    r.get(0)
                })?;
            super::proposals::propose(&tx, &sweep, free_slots.saturating_sub(queued))?;
        }
        // Fused sweeps (`[resources] fuse`) lease in groups: a pending trial and the partners it
        // can train with are one candidate, taking one slot.
        let mut groups = queue::read_groups(&tx, room, now_ms)?;
        let candidates: Vec<Candidate> = groups
            .iter()
            .map(|g| {
                let first = &g.members[0].spec;
                let share = first.resources.gpu_share;
                let memory_bytes = match share {
                    Some(_) => peak_gpu_memory(&tx, &first.sweep, &first.id.0)?,
                    None => None,
                };
                Ok(Candidate { gpus: first.resources.gpus, share, memory_bytes })
            })
            .collect::<Result<_>>()?;
        let terms = LeaseTerms { agent_id, now_ms, deadline_ms: now_ms + ttl };
        let mut grants = Vec::new();
        for i in scheduler::choose(&candidates, free_slots, &mut gpus) {
            let Group { key, members } = std::mem::take(&mut groups[i]);
            let mut membership = Membership { group: 0, size: members.len(), key: key.as_deref() };
            let mut members = members.into_iter();
            let first = grant(&tx, members.next().expect("a group has a first member"), &terms, membership)?;
            // A fused group is named by its first member's lease; a trial without partners runs alone.
            membership.group = if membership.size == 1 { 0 } else { first.lease_id };
            grants.push(Grant { group: membership.group, ..first });
            for member in members {
                grants.push(grant(&tx, member, &terms, membership)?);
            }
        }
        tx.commit()?;
        Ok(LeaseAnswer { grants, quarantine: None })
    }

    /// Extends the agent's current leases and marks started trials running. Returns, per lease,
    /// what the agent must do and the new deadline. Refused as a whole, changing nothing, unless
    /// `session` is the agent's and every lease named was granted to this agent.
    pub fn heartbeat(
        &mut self,
        agent_id: &str,
        session: &SessionHash,
        leases: &[LeaseReport],
        now_ms: i64,
    ) -> Result<Vec<(i64, LeaseVerdict, i64)>> {
        let deadline = now_ms + self.lease_ttl_ms;
        let tx = self.conn.transaction()?;
        admit_agent(&tx, agent_id, session, now_ms)?;
        let mut verdicts = Vec::with_capacity(leases.len());
        for lease in leases {
            let Some(h) = holder(&tx, lease.lease_id)? else {
                verdicts.push((lease.lease_id, LeaseVerdict::Abandon, 0));
                continue;
            };
            if h.agent != agent_id {
                return Err(Error::PermissionDenied(format!(
                    "lease {} was granted to another agent, not `{agent_id}`",
                    lease.lease_id
                )));
            }
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

    /// Closes an attempt. Refused unless `session` is the registration that was granted `lease_id`
    /// and the lease is still the trial's (a compare-and-set on the trial's current attempt).
    /// Returns the trial's state afterwards.
    pub fn complete(
        &mut self,
        lease_id: i64,
        session: &SessionHash,
        c: &Completion,
        now_ms: i64,
    ) -> Result<TrialState> {
        let (pause_after, alive_since_ms) = (self.pause_after, now_ms - self.alive_window_ms());
        let tx = self.conn.transaction()?;
        admit_lease_holder(&tx, lease_id, session)?;
        let next = complete_in(&tx, lease_id, c, now_ms)?;
        if !c.released {
            let (sweep, _, _) = Self::attempt_of_lease(&tx, lease_id)?;
            super::blame::pause_if_failing(&tx, &sweep, pause_after, alive_since_ms)?;
        }
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
            if next == TrialState::Failed {
                super::rungs::count_failure(&tx, &sweep, &trial_id, now_ms)?;
                super::rungs::settle_paused(&tx, &sweep, now_ms)?;
            }
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

/// To whom and until when the leases of one request are granted.
#[derive(Debug, Clone, Copy)]
struct LeaseTerms<'a> {
    agent_id: &'a str,
    now_ms: i64,
    deadline_ms: i64,
}

/// The fused group a grant belongs to: its first member's lease id (0 for that first member and
/// for a trial alone), its size (1 alone) and its fusion key (none alone).
#[derive(Debug, Clone, Copy)]
struct Membership<'a> {
    group: i64,
    size: usize,
    key: Option<&'a str>,
}

/// Leases `trial` to the agent of `terms` as a new attempt.
fn grant(tx: &Transaction, trial: Pending, terms: &LeaseTerms<'_>, membership: Membership<'_>) -> Result<Grant> {
    let Pending { trial_id, counters, spec } = trial;
    let LeaseTerms { agent_id, now_ms, deadline_ms } = *terms;
    let sweep = &spec.sweep;
    let policy = sweep_policy(tx, sweep)?;
    let (state, counters) = lifecycle::transition(TrialState::Pending, counters, Event::Leased, policy)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let fusion_key = if membership.size > 1 { membership.key } else { None };
    let super::rungs::LeaseBudget { stop_after, keep_checkpoint } = super::rungs::lease_budget(tx, sweep, &trial_id)?;
    tx.execute(
        "INSERT INTO attempts (sweep, trial_id, attempt, agent, leased_at_ms, group_size, fusion_key, stop_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![sweep, trial_id, counters.attempt, agent_id, now_ms, membership.size as i64, fusion_key, stop_after],
    )?;
    let lease_id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE trials SET state = ?3, attempt = ?4, lease_id = ?5, agent = ?6, deadline_ms = ?7
         WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id, state.as_str(), counters.attempt, lease_id, agent_id, deadline_ms],
    )?;
    Ok(Grant {
        lease_id,
        attempt: counters.attempt,
        deadline_ms,
        spec,
        group: membership.group,
        stop_after,
        keep_checkpoint,
    })
}

/// How many trials the attempt under `lease_id` trained with in one group (1: alone).
fn attempt_group_size(tx: &Transaction, lease_id: i64) -> Result<u32> {
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

/// Closes the attempt under `lease_id` within `tx`: [`Store::complete`], and the end of an attempt
/// the coordinator refuses while storing its metrics.
pub(super) fn complete_in(tx: &Transaction, lease_id: i64, c: &Completion, now_ms: i64) -> Result<TrialState> {
    let h = holder(tx, lease_id)?.ok_or(Error::StaleLease(lease_id))?;
    let policy = sweep_policy(tx, &h.sweep)?;
    let group_size = attempt_group_size(tx, lease_id)?;
    let exit = c.exit(group_size);
    let outcome = match exit {
        _ if c.released => "released",
        Exit::Success => "succeeded",
        Exit::Failure => "failed",
        // Both halve the groups the trial joins next (`fused_sizing::trial_limit`).
        Exit::OutOfMemory | Exit::GroupOutOfMemory => "out_of_memory",
        // Halves the groups the trial joins next, as running out of memory does.
        Exit::GroupFailure => "group_failed",
        Exit::BadConfig => "bad_config",
        Exit::StoppedOnRequest => "stopped",
    };
    let error = c.error();
    match scheduler::judge_lease(h.state, h.current_lease, lease_id) {
        LeaseVerdict::Abandon => return Err(Error::StaleLease(lease_id)),
        LeaseVerdict::Stop => {
            // Cancelled or stopped early while running: the trial keeps that state; close the
            // attempt for the record.
            close_attempt(tx, lease_id, h.state.as_str(), c, error.as_deref(), now_ms)?;
            tx.execute(
                "UPDATE trials SET lease_id = NULL, deadline_ms = NULL WHERE sweep = ?1 AND trial_id = ?2",
                params![h.sweep, h.trial_id],
            )?;
            return Ok(h.state);
        }
        LeaseVerdict::Extend => {}
    }
    let event = match c.event(group_size) {
        Event::Exited(Exit::Success) => {
            let stop_after = stop_after(tx, lease_id)?;
            if let (true, Some(epoch)) = (c.kept_checkpoint, stop_after) {
                super::pbt::record_kept(tx, &h.sweep, &h.trial_id, epoch)?;
            }
            match super::rungs::segment_end(tx, &h.sweep, &h.trial_id, stop_after)? {
                Some(promoted) => Event::ReachedBudget { promoted },
                None => Event::Exited(Exit::Success),
            }
        }
        event => event,
    };
    let (next, counters) =
        lifecycle::transition(h.state, h.counters, event, policy).map_err(|e| Error::Corrupt(e.to_string()))?;
    close_attempt(tx, lease_id, outcome, c, error.as_deref(), now_ms)?;
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
            // A trial handed back unstarted did not start now either.
            (!c.unstarted).then_some(now_ms),
            not_before
        ],
    )?;
    if !c.released {
        record_streak(tx, lease_id, scheduler::streak_after(exit))?;
    }
    if event == (Event::ReachedBudget { promoted: true }) {
        tx.execute(
            "UPDATE trials SET segments = segments + 1 WHERE sweep = ?1 AND trial_id = ?2",
            params![h.sweep, h.trial_id],
        )?;
    }
    if next == TrialState::Failed {
        super::rungs::count_failure(tx, &h.sweep, &h.trial_id, now_ms)?;
    }
    if next != TrialState::Pending {
        super::rungs::settle_paused(tx, &h.sweep, now_ms)?;
    }
    Ok(next)
}

/// The last epoch the attempt under `lease_id` was to train (`attempts.stop_after`).
fn stop_after(tx: &Transaction, lease_id: i64) -> Result<Option<u32>> {
    Ok(tx.query_row("SELECT stop_after FROM attempts WHERE lease_id = ?1", [lease_id], |r| r.get(0))?)
}

pub(super) fn holder(tx: &Transaction, lease_id: i64) -> Result<Option<Holder>> {
    let row = tx
        .query_row(
            "SELECT t.sweep, t.trial_id, t.state, t.attempt, t.user_failures, t.lost, t.lease_id, a.agent
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
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .optional()?;
    row.map(|(sweep, trial_id, state, counters, current_lease, agent)| {
        Ok(Holder { sweep, trial_id, state: state.parse().map_err(Error::Corrupt)?, counters, current_lease, agent })
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

/// Records what an attempt's end did to its agent's run of failed attempts; a success starts the
/// run anew after its lease (`blame::quarantine` weighs only failures after it).
fn record_streak(tx: &Transaction, lease_id: i64, streak: Streak) -> Result<()> {
    let update = match streak {
        Streak::Lengthen => "consecutive_failures = consecutive_failures + 1",
        Streak::Reset => "consecutive_failures = 0, streak_from_lease = ?1",
        Streak::Keep => return Ok(()),
    };
    tx.execute(
        &format!("UPDATE agents SET {update} WHERE id = (SELECT agent FROM attempts WHERE lease_id = ?1)"),
        [lease_id],
    )?;
    Ok(())
}
