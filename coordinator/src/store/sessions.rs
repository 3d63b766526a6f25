//! Who may act on an agent id or a lease: only the registration whose session secret the caller
//! presents (`crate::session`). Every check runs inside the transaction of the call it guards and
//! before it changes anything, so a refused call leaves no trace.

use super::leases::holder;
use crate::error::{Error, Result};
use crate::scheduler;
use crate::session::SessionHash;
use rusqlite::{params, OptionalExtension, Transaction};

/// Admits a call of agent `agent_id` and marks the agent as heard from now; returns its current run
/// of failed attempts. Unknown agents, and agents registered before sessions existed, must register
/// again (NOT_FOUND, which agents act on); a wrong secret is PERMISSION_DENIED.
pub(super) fn admit_agent(tx: &Transaction, agent_id: &str, session: &SessionHash, now_ms: i64) -> Result<u32> {
    let row: Option<(Option<Vec<u8>>, u32)> = tx
        .query_row("SELECT session_hash, consecutive_failures FROM agents WHERE id = ?1", [agent_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((Some(stored), streak)) = row else {
        return Err(Error::UnknownAgent(agent_id.to_string()));
    };
    if !session.matches(&stored) {
        return Err(Error::PermissionDenied(format!(
            "agent `{agent_id}` belongs to another registration: send the session secret its Register answered with"
        )));
    }
    tx.execute("UPDATE agents SET last_seen_ms = ?2 WHERE id = ?1", params![agent_id, now_ms])?;
    Ok(streak)
}

/// Admits a write under `lease_id` only from the registration that was granted it, live or not (a
/// restarted agent re-sends the output of its earlier run under that run's secret).
pub(super) fn admit_lease_holder(tx: &Transaction, lease_id: i64, session: &SessionHash) -> Result<()> {
    let stored: Option<Option<Vec<u8>>> = tx
        .query_row(
            "SELECT ag.session_hash FROM attempts a LEFT JOIN agents ag ON ag.id = a.agent WHERE a.lease_id = ?1",
            [lease_id],
            |r| r.get(0),
        )
        .optional()?;
    match stored {
        None => Err(Error::StaleLease(lease_id)),
        Some(Some(hash)) if session.matches(&hash) => Ok(()),
        Some(_) => Err(Error::PermissionDenied(format!("lease {lease_id} was granted to another agent registration"))),
    }
}

/// Admits a metrics report under `lease_id` from its holder, and says whether it is live
/// (`scheduler::admit_rows`): until the trial has finished, its rows count like any, and the
/// schedule judges them; after, the attempt that finished it may add nothing, and late rows of an
/// attempt it superseded are kept, judged by nothing, moving a final value only past its epoch.
pub(super) fn admit_report(tx: &Transaction, lease_id: i64, session: &SessionHash) -> Result<bool> {
    admit_lease_holder(tx, lease_id, session)?;
    let h = holder(tx, lease_id)?.ok_or(Error::StaleLease(lease_id))?;
    let (_, _, attempt) = super::Store::attempt_of_lease(tx, lease_id)?;
    match scheduler::admit_rows(h.state, h.current_lease, lease_id, attempt < h.counters.attempt) {
        scheduler::RowAdmission::Rows => Ok(true),
        scheduler::RowAdmission::RowsOnly => Ok(false),
        scheduler::RowAdmission::Refused => {
            Err(Error::TrialFinished { lease_id, trial: h.trial_id, state: h.state.as_str() })
        }
    }
}
