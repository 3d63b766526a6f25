//! The durable record: sweeps, trials, attempts, agents and metric rows in one SQLite file
//! (WAL, `synchronous=FULL`). Every answer the coordinator gives is committed here first, and a
//! restarted coordinator rebuilds everything from it.
//!
//! Each method is one short transaction; callers hold the store's lock only around a call.

mod agents;
mod attempts;
mod blame;
mod dashboard;
mod gauges;
mod leases;
mod metrics;
mod owners;
mod pbt;
mod proposals;
mod queue;
mod retry;
mod rungs;
mod schema;
mod sessions;
mod sweeps;
mod trial_rows;

pub use agents::AgentRecord;
pub use attempts::AttemptRecord;
pub use dashboard::{ComputeHours, CurvePoint};
pub use gauges::Gauges;
pub use leases::{Grant, LeaseAnswer, LeaseReport};
pub use metrics::{MetricBatch, MetricWarning, Reported, StoredMetric};
pub use retry::RetryWhich;
pub use rungs::RungCount;
pub use sweeps::{Cancelling, NewSweep, SubmitOutcome, SweepCursor, SweepSummary, TrialRecord};
pub use trial_rows::Chosen;

use crate::error::Result;
use rusqlite::Connection;
use std::path::Path;

/// Trials per transaction when a change touches a whole sweep (staging, moving in or dropping an
/// upload's trials, cancelling): a batch takes a few milliseconds, which is how long an agent's
/// call may wait behind it. A submission of at most this many trials in one part is stored in one
/// transaction, without staging.
pub const BATCH: usize = 2_000;

pub struct Store {
    conn: Connection,
    lease_ttl_ms: i64,
    /// Failed attempts that blame an agent's node (`scheduler::blames_node`) after which it gets
    /// no new leases; 0: never.
    quarantine_after: u32,
    /// Failed attempts of a sweep, none succeeding, after which it is paused; 0: never.
    pause_after: u32,
    /// Distinct metric names one sweep may report (`--max-metric-names`).
    max_metric_names: u32,
}

/// One broken node must not burn a sweep: after this many failed attempts since its last success
/// that blame the node (their trials succeed on other agents) an agent is quarantined
/// (`sweep-coordinator --quarantine-after`).
pub const DEFAULT_QUARANTINE_AFTER: u32 = 5;

/// One broken sweep must not burn the cluster's time: after this many failed attempts on two
/// agents (or the only one) with none succeeding, a sweep is paused (`sweep-coordinator
/// --pause-after`). As many as quarantine takes, so a sweep with a healthy node to run on
/// usually succeeds somewhere before it could be paused for a broken node's failures.
pub const DEFAULT_PAUSE_AFTER: u32 = 5;

impl Store {
    /// Opens (creating if needed) `<dir>/state.db`.
    pub fn open(dir: &Path, lease_ttl_ms: i64) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("state.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&conn)?;
        Ok(Store {
            conn,
            lease_ttl_ms,
            quarantine_after: DEFAULT_QUARANTINE_AFTER,
            pause_after: DEFAULT_PAUSE_AFTER,
            max_metric_names: crate::limits::DEFAULT_MAX_METRIC_NAMES,
        })
    }

    /// Another connection to the same file that can only read, with the same settings. Reads made
    /// through it (listings, results, the Parquet sink) run beside writes instead of waiting for
    /// the store's lock: in WAL mode a reader sees the last commit while a writer works.
    pub fn reader(&self) -> Result<Store> {
        let path = self.conn.path().filter(|p| !p.is_empty()).ok_or_else(|| {
            crate::Error::Io(std::io::Error::other("the state store has no file for a reader to open"))
        })?;
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Store {
            conn,
            lease_ttl_ms: self.lease_ttl_ms,
            quarantine_after: self.quarantine_after,
            pause_after: self.pause_after,
            max_metric_names: self.max_metric_names,
        })
    }

    pub fn set_quarantine_after(&mut self, failures: u32) {
        self.quarantine_after = failures;
    }

    pub fn set_pause_after(&mut self, failures: u32) {
        self.pause_after = failures;
    }

    /// Agents heard from within this long count as alive: two lease lifetimes, as in the gauges.
    pub fn alive_window_ms(&self) -> i64 {
        2 * self.lease_ttl_ms
    }

    pub fn set_max_metric_names(&mut self, names: u32) {
        self.max_metric_names = names;
    }

    pub fn quarantine_after(&self) -> u32 {
        self.quarantine_after
    }

    pub fn lease_ttl_ms(&self) -> i64 {
        self.lease_ttl_ms
    }
}

/// A trial's counters from three consecutive columns (attempt, user_failures, lost) of a row.
pub(crate) fn counters_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<crate::lifecycle::Counters> {
    Ok(crate::lifecycle::Counters { attempt: r.get(first)?, user_failures: r.get(first + 1)?, lost: r.get(first + 2)? })
}

/// Milliseconds since the Unix epoch, the coordinator's one clock reading.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
