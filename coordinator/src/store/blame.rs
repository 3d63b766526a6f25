//! Whose fault failed trials are, from the attempt history: an agent is quarantined only on
//! failures that blame its node (`scheduler::blames_node`), a sweep whose trials fail everywhere is
//! paused (`scheduler::should_pause`). Both decisions are recorded with their evidence and logged,
//! and an operator clears them: `unquarantine`, `resume`.

use super::Store;
use crate::error::{Error, Result};
use crate::ownership::Caller;
use crate::scheduler::{self, FailureEvidence, Stall};
use rusqlite::{params, OptionalExtension, Transaction};

/// Outcomes of attempts that count as failures of the trial's own code on a node
/// (`scheduler::streak_after`: they lengthen an agent's run of failures).
const NODE_FAILURES: &str = "('failed', 'out_of_memory')";
/// Outcomes of attempts that count towards pausing their sweep: the trial's code failed, or said
/// its configuration is invalid.
const SWEEP_FAILURES: &str = "('failed', 'bad_config')";

/// The agent's quarantine, deciding it now if its failures since its last success blame its node:
/// the reason when it is quarantined, None when it may lease. `streak` is its run of failed
/// attempts in a row, an upper bound of the failures that blame it, so an agent whose last
/// attempts succeeded costs no query.
pub(super) fn quarantine(
    tx: &Transaction,
    agent_id: &str,
    streak: u32,
    after: u32,
    now_ms: i64,
) -> Result<Option<String>> {
    let (reason, from_lease): (Option<String>, i64) = tx.query_row(
        "SELECT CASE WHEN quarantined_at_ms IS NULL THEN NULL ELSE COALESCE(quarantine_reason, '') END,
                streak_from_lease
         FROM agents WHERE id = ?1",
        [agent_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if reason.is_some() || !scheduler::is_quarantined(streak, after) {
        return Ok(reason);
    }
    let window = after.saturating_mul(scheduler::QUARANTINE_WINDOW_FACTOR);
    let failures: Vec<(String, String, FailureEvidence, Option<String>)> = {
        let mut q = tx.prepare_cached(&format!(
            "SELECT f.sweep, f.trial_id,
                EXISTS (SELECT 1 FROM attempts o WHERE o.sweep = f.sweep AND o.trial_id = f.trial_id
                        AND o.outcome = 'succeeded' AND o.agent != ?1),
                EXISTS (SELECT 1 FROM attempts o WHERE o.sweep = f.sweep AND o.trial_id = f.trial_id
                        AND o.outcome IN {SWEEP_FAILURES} AND o.agent != ?1),
                EXISTS (SELECT 1 FROM attempts o WHERE o.sweep = f.sweep AND o.outcome = 'succeeded' AND o.agent != ?1),
                f.error
             FROM (SELECT sweep, trial_id, error FROM attempts
                   WHERE agent = ?1 AND lease_id > ?2 AND outcome IN {NODE_FAILURES}
                   ORDER BY lease_id DESC LIMIT ?3) f"
        ))?;
        let rows = q.query_map(params![agent_id, from_lease, window], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                FailureEvidence {
                    trial_succeeded_elsewhere: r.get(2)?,
                    trial_failed_elsewhere: r.get(3)?,
                    sweep_succeeded_elsewhere: r.get(4)?,
                },
                r.get(5)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let blamed: Vec<_> = failures.iter().filter(|f| scheduler::blames_node(f.2)).collect();
    if !scheduler::is_quarantined(blamed.len() as u32, after) {
        return Ok(None);
    }
    let mut sweeps: Vec<&str> = blamed.iter().map(|f| f.0.as_str()).collect();
    sweeps.sort_unstable();
    sweeps.dedup();
    let (_, example_trial, _, example_error) = blamed[0];
    let reason = format!(
        "{} of its last {} failed attempts are of trials that succeed on other agents (sweeps {}); latest: trial {example_trial}: {}",
        blamed.len(),
        failures.len(),
        sweeps.join(", "),
        first_line(example_error.as_deref().unwrap_or("no error recorded")),
    );
    tx.execute(
        "UPDATE agents SET quarantined_at_ms = ?2, quarantine_reason = ?3 WHERE id = ?1",
        params![agent_id, now_ms, reason],
    )?;
    tracing::warn!(agent = %agent_id, blamed = blamed.len(), failures = failures.len(), sweeps = ?sweeps, evidence = %reason, "agent quarantined: it gets no new leases until `sweep agents --unquarantine`");
    Ok(Some(reason))
}

/// Pauses `sweep` when, since it was submitted or last resumed, none of its attempts succeeded and
/// its failures on agents that are not quarantined satisfy `scheduler::should_pause`. Its pending
/// trials are then not leased (the queue reads active sweeps only) until it is resumed.
pub(super) fn pause_if_failing(tx: &Transaction, sweep: &str, after: u32, alive_since_ms: i64) -> Result<()> {
    if after == 0 {
        return Ok(());
    }
    let row: Option<(String, i64)> = tx
        .query_row("SELECT state, failures_from_lease FROM sweeps WHERE name = ?1", [sweep], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((state, from_lease)) = row else { return Ok(()) };
    if state != "active" {
        return Ok(());
    }
    let succeeded: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM attempts WHERE sweep = ?1 AND outcome = 'succeeded' AND lease_id > ?2)",
        params![sweep, from_lease],
        |r| r.get(0),
    )?;
    if succeeded {
        return Ok(());
    }
    let (failures, distinct): (u32, u32) = tx.query_row(
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT a.agent) FROM attempts a JOIN agents g ON g.id = a.agent
             WHERE a.sweep = ?1 AND a.lease_id > ?2 AND a.outcome IN {SWEEP_FAILURES} AND g.quarantined_at_ms IS NULL"
        ),
        params![sweep, from_lease],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let eligible: u32 = tx.query_row(
        "SELECT COUNT(*) FROM agents WHERE last_seen_ms >= ?1 AND quarantined_at_ms IS NULL",
        [alive_since_ms],
        |r| r.get(0),
    )?;
    if !scheduler::should_pause(failures, distinct, eligible, after) {
        return Ok(());
    }
    // The common error: the most frequent among the failures counted, the latest of equals.
    let error: Option<String> = tx
        .query_row(
            &format!(
                "SELECT error FROM attempts WHERE sweep = ?1 AND lease_id > ?2 AND outcome IN {SWEEP_FAILURES}
                 GROUP BY error ORDER BY COUNT(*) DESC, MAX(lease_id) DESC LIMIT 1"
            ),
            params![sweep, from_lease],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let reason = format!(
        "{failures} attempts failed on {distinct} agent{} and none succeeded: the sweep's command or configuration is the likely cause",
        if distinct == 1 { "" } else { "s" }
    );
    tx.execute(
        "UPDATE sweeps SET state = 'paused', pause_reason = ?2, pause_error = ?3 WHERE name = ?1",
        params![sweep, reason, error],
    )?;
    tracing::warn!(sweep = %sweep, failures, agents = distinct, error = %first_line(error.as_deref().unwrap_or("")), "sweep paused: its trials fail on every agent; resume with `sweep resume`");
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

impl Store {
    /// Lets agents out of quarantine: `name` is an agent id (`gpu-node-3-2`), or a name given at
    /// registration, which frees every registration under it. Their run of failures starts anew,
    /// so past failures do not quarantine them again. Returns the ids freed; refuses a name no
    /// agent has.
    pub fn unquarantine(&mut self, name: &str) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        let ids: Vec<(String, bool)> = {
            let mut q = tx.prepare(
                "SELECT id, quarantined_at_ms IS NOT NULL FROM agents WHERE id = ?1
                 UNION SELECT id, quarantined_at_ms IS NOT NULL FROM agents WHERE name = ?1 AND NOT EXISTS (SELECT 1 FROM agents WHERE id = ?1)
                 ORDER BY 1",
            )?;
            let rows = q.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if ids.is_empty() {
            return Err(Error::NoSuchAgent(name.to_string()));
        }
        let freed: Vec<String> = ids.into_iter().filter(|(_, q)| *q).map(|(id, _)| id).collect();
        for id in &freed {
            tx.execute(
                "UPDATE agents SET quarantined_at_ms = NULL, quarantine_reason = NULL, consecutive_failures = 0,
                        streak_from_lease = (SELECT COALESCE(MAX(lease_id), 0) FROM attempts)
                 WHERE id = ?1",
                [id],
            )?;
            tracing::info!(agent = %id, "agent let out of quarantine: it leases again");
        }
        tx.commit()?;
        Ok(freed)
    }

    /// Resumes a paused sweep: its pending trials are leased again, and only failures from now on
    /// count towards pausing it again. Only its owner or an admin may.
    pub fn resume(&mut self, sweep: &str, caller: &Caller) -> Result<()> {
        let tx = self.conn.transaction()?;
        caller.check_may("resume", sweep, super::owners::owner(&tx, sweep)?.as_deref())?;
        let state: String = tx
            .query_row("SELECT state FROM sweeps WHERE name = ?1", [sweep], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::UnknownSweep(sweep.to_string()))?;
        if state != "paused" {
            return Err(Error::Conflict(format!(
                "sweep `{sweep}` is {state}, not paused: only a paused sweep can be resumed"
            )));
        }
        tx.execute(
            "UPDATE sweeps SET state = 'active', pause_reason = NULL, pause_error = NULL,
                    failures_from_lease = (SELECT COALESCE(MAX(lease_id), 0) FROM attempts)
             WHERE name = ?1",
            [sweep],
        )?;
        tx.commit()?;
        tracing::info!(sweep = %sweep, by = caller.name().unwrap_or_default(), "sweep resumed");
        Ok(())
    }

    /// Why the pending trials of an active sweep have nobody to run them, judged from the agents
    /// heard from within `window_ms`; None when some agent could, or nothing is pending.
    pub fn stall(&self, sweep: &str, now_ms: i64, window_ms: i64) -> Result<Option<Stall>> {
        let (pending, min_gpus): (u32, u32) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(MIN(t.gpus), 0) FROM trials t JOIN sweeps s ON s.name = t.sweep
             WHERE t.sweep = ?1 AND t.state = 'pending' AND s.state = 'active'",
            [sweep],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if pending == 0 {
            return Ok(None);
        }
        let mut q = self
            .conn
            .prepare_cached("SELECT gpus, quarantined_at_ms IS NOT NULL FROM agents WHERE last_seen_ms >= ?1")?;
        let agents: Vec<(u32, bool)> = q
            .query_map([now_ms - window_ms], |r| {
                let gpus: String = r.get(0)?;
                Ok((gpus.split(',').filter(|g| !g.is_empty()).count() as u32, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(scheduler::stall(pending, min_gpus, &agents))
    }
}
