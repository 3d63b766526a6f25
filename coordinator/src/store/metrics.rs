//! Metric rows: stored once per (sweep, trial, attempt, epoch, metric), numbered in arrival order
//! so the Parquet sink can write each row exactly once.

use super::leases::complete_in;
use super::Store;
use crate::error::{Error, Result};
use crate::lifecycle::Completion;
use crate::results::MetricRow;
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeSet;
use sweep_spec::EpochRecord;

/// The epochs one report carries, under one lease, from the registration holding `session`.
pub struct MetricBatch {
    pub lease_id: i64,
    pub session: crate::session::SessionHash,
    pub epochs: Vec<EpochRecord>,
    /// What the agent could not record of the trial's output.
    pub warnings: Vec<MetricWarning>,
}

/// A metric of a trial's output that its agent could not record, and why (`sweep status` shows
/// it). Kept once per trial and field, at most [`crate::limits::MAX_WARNINGS_PER_TRIAL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricWarning {
    /// The metric's name as the trial wrote it (escaped by the agent); "" for a whole line.
    pub field: String,
    pub message: String,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub added: u32,
    /// Rows already stored: a retried report.
    pub duplicate: u32,
    /// The sweep's schedule stopped the trial at a rung this report reached: its agent should
    /// stop it now rather than at its next heartbeat.
    pub stopped: bool,
}

/// A stored row and its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMetric {
    pub seq: i64,
    pub row: MetricRow,
}

impl Store {
    /// Stores a report under the attempt its lease was granted for (see
    /// [`Store::attempt_of_lease`]). Rows already stored are skipped, so a retried report is a no-op. Returns (rows added, rows that were duplicates).
    /// Refused unless the report comes from the lease's holder and may still add rows: once the
    /// trial has finished, only late rows of an attempt it superseded (`sessions::admit_report`).
    /// A trial's final value of a metric is its value at the latest epoch any attempt reported,
    /// the later attempt's on a tie, whenever the rows arrive: a late row past the final epoch
    /// moves it even after the trial finished (the retry resumed from the checkpoint that attempt
    /// wrote, while cut off, past where its reports had reached), and the trial's row is then
    /// written again. A report that reaches a rung of the sweep's schedule is judged in the same
    /// transaction (`rungs::judge`); a late one is not.
    pub fn report_metrics(&mut self, batch: &MetricBatch, recorded_at_us: i64) -> Result<Reported> {
        let tx = self.conn.transaction()?;
        let live = super::sessions::admit_report(&tx, batch.lease_id, &batch.session)?;
        let (sweep, trial_id, attempt) = Store::attempt_of_lease(&tx, batch.lease_id)?;
        if let Some(refusal) = admit_names(&tx, &sweep, batch, self.max_metric_names)? {
            // The trial would report these names again on any retry: it fails, and the rows of
            // this report are not stored.
            return Err(refuse(tx, batch.lease_id, format!("trial {trial_id}: {refusal}"), recorded_at_us / 1000)?);
        }
        let (mut added, mut duplicate) = (0u32, 0u32);
        let mut last_seq = None;
        let mut moved_late = false;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO metrics (sweep, trial_id, attempt, epoch, step, metric, value, recorded_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut final_value = tx.prepare_cached(
                "INSERT INTO finals (sweep, trial_id, metric, epoch, attempt, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (sweep, trial_id, metric) DO UPDATE SET epoch = excluded.epoch, attempt = excluded.attempt, value = excluded.value
                 WHERE excluded.epoch > finals.epoch OR (excluded.epoch = finals.epoch AND excluded.attempt >= finals.attempt)",
            )?;
            for record in &batch.epochs {
                let step = record.step_or_epoch();
                for (metric, value) in &record.metrics {
                    let n = insert.execute(params![
                        sweep,
                        trial_id,
                        attempt,
                        record.epoch,
                        step,
                        metric,
                        value,
                        recorded_at_us
                    ])?;
                    if n == 1 {
                        added += 1;
                        last_seq = Some(tx.last_insert_rowid());
                        let moved =
                            final_value.execute(params![sweep, trial_id, metric, record.epoch, attempt, value])?;
                        moved_late |= !live && moved > 0;
                    } else {
                        duplicate += 1;
                    }
                }
            }
        }
        if let Some(seq) = last_seq {
            tx.execute("UPDATE sweeps SET last_metric_seq = ?2 WHERE name = ?1", params![sweep, seq])?;
        }
        if moved_late {
            // The finished trial's row changed: a new version, which the Parquet sink follows.
            tx.execute("UPDATE sweeps SET trials_version = trials_version + 1 WHERE name = ?1", [&sweep])?;
            tx.execute(
                "UPDATE trials SET version = (SELECT trials_version FROM sweeps WHERE name = ?1)
                 WHERE sweep = ?1 AND trial_id = ?2",
                params![sweep, trial_id],
            )?;
        }
        record_warnings(&tx, &sweep, &trial_id, attempt, &batch.warnings, recorded_at_us / 1000)?;
        let latest = batch.epochs.iter().map(|r| r.epoch).max();
        let mut stopped = false;
        if let Some(latest) = latest.filter(|_| live) {
            let judged = super::rungs::judge(&tx, &sweep, &trial_id, latest, recorded_at_us / 1000)?;
            stopped = judged.stopped;
            if let Some(reason) = judged.refused {
                // No retry could report what the schedule needs: the trial fails, its rows kept.
                return Err(refuse(tx, batch.lease_id, reason, recorded_at_us / 1000)?);
            }
        }
        tx.commit()?;
        Ok(Reported { added, duplicate, stopped })
    }

    /// Up to `limit` rows of `sweep` with a sequence number above `after`, in order, each marked
    /// superseded when a later attempt of its trial reported the same epoch and metric.
    pub fn metrics_after(&self, sweep: &str, after: i64, limit: u32) -> Result<Vec<StoredMetric>> {
        self.metric_rows(sweep, after, i64::MAX, limit)
    }

    /// The rows of `sweep` numbered `first..=last`: one part file's, to write it again.
    pub fn metrics_between(&self, sweep: &str, first: i64, last: i64) -> Result<Vec<StoredMetric>> {
        self.metric_rows(sweep, first - 1, last, u32::MAX)
    }

    fn metric_rows(&self, sweep: &str, after: i64, upto: i64, limit: u32) -> Result<Vec<StoredMetric>> {
        let mut q = self.conn.prepare_cached(
            "SELECT m.seq, m.trial_id, m.attempt, m.epoch, m.step, m.metric, m.value, m.recorded_at_us,
                    EXISTS (SELECT 1 FROM metrics later
                            WHERE later.sweep = m.sweep AND later.trial_id = m.trial_id AND later.epoch = m.epoch
                              AND later.metric = m.metric AND later.attempt > m.attempt)
             FROM metrics m WHERE m.sweep = ?1 AND m.seq > ?2 AND m.seq <= ?3 ORDER BY m.seq LIMIT ?4",
        )?;
        let rows = q.query_map(params![sweep, after, upto, limit], |r| {
            Ok(StoredMetric {
                seq: r.get(0)?,
                row: MetricRow {
                    sweep: sweep.to_string(),
                    trial_id: r.get(1)?,
                    attempt: r.get(2)?,
                    epoch: r.get(3)?,
                    step: r.get(4)?,
                    metric: r.get(5)?,
                    value: r.get::<_, Option<f64>>(6)?.unwrap_or(f64::NAN),
                    recorded_at_us: r.get(7)?,
                    superseded: r.get(8)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sequence numbers, at most `written`, of the rows of `sweep` that rows numbered
    /// `written + 1..=upto` superseded (same trial, epoch and metric, an earlier attempt): the
    /// rows whose part files must be written again with the mark.
    pub fn newly_superseded(&self, sweep: &str, written: i64, upto: i64) -> Result<Vec<i64>> {
        let mut q = self.conn.prepare_cached(
            "SELECT DISTINCT earlier.seq FROM metrics m JOIN metrics earlier
               ON earlier.sweep = m.sweep AND earlier.trial_id = m.trial_id AND earlier.epoch = m.epoch
              AND earlier.metric = m.metric AND earlier.attempt < m.attempt
             WHERE m.sweep = ?1 AND m.seq > ?2 AND m.seq <= ?3 AND earlier.seq <= ?2 ORDER BY earlier.seq",
        )?;
        let seqs = q.query_map(params![sweep, written, upto], |r| r.get(0))?;
        Ok(seqs.collect::<rusqlite::Result<_>>()?)
    }

    /// Sequence numbers, at most `upto`, of every superseded row of `sweep`: what the part files
    /// must mark, checked when the coordinator starts.
    pub fn superseded_upto(&self, sweep: &str, upto: i64) -> Result<Vec<i64>> {
        let mut q = self.conn.prepare_cached(
            "SELECT m.seq FROM metrics m WHERE m.sweep = ?1 AND m.seq <= ?2
               AND EXISTS (SELECT 1 FROM metrics later
                           WHERE later.sweep = m.sweep AND later.trial_id = m.trial_id AND later.epoch = m.epoch
                             AND later.metric = m.metric AND later.attempt > m.attempt)
             ORDER BY m.seq",
        )?;
        let seqs = q.query_map(params![sweep, upto], |r| r.get(0))?;
        Ok(seqs.collect::<rusqlite::Result<_>>()?)
    }
}

/// Ends the attempt under `lease_id` as refused for `reason` (its trial fails without a retry:
/// any retry would break the same rule), commits what `tx` holds, and returns the refusal to
/// answer the report with.
fn refuse(tx: Transaction, lease_id: i64, reason: String, now_ms: i64) -> Result<Error> {
    let c = Completion { refused: Some(reason.clone()), ..Completion::default() };
    match complete_in(&tx, lease_id, &c, now_ms) {
        Ok(_) | Err(Error::StaleLease(_)) => {}
        Err(e) => return Err(e),
    }
    tx.commit()?;
    Ok(Error::Refused(reason))
}

/// Keeps each warning whose field the trial has none for yet, up to the per-trial bound.
fn record_warnings(
    tx: &Transaction,
    sweep: &str,
    trial_id: &str,
    attempt: u32,
    warnings: &[MetricWarning],
    now_ms: i64,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO trial_warnings (sweep, trial_id, field, message, attempt, recorded_at_ms)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6
         WHERE (SELECT COUNT(*) FROM trial_warnings WHERE sweep = ?1 AND trial_id = ?2) < ?7",
    )?;
    for w in warnings {
        insert.execute(params![
            sweep,
            trial_id,
            w.field,
            w.message,
            attempt,
            now_ms,
            crate::limits::MAX_WARNINGS_PER_TRIAL
        ])?;
    }
    Ok(())
}

/// Records the names of `batch` that `sweep` has not reported before, if they fit in `limit`
/// distinct names per sweep; otherwise records nothing and says why.
fn admit_names(tx: &Transaction, sweep: &str, batch: &MetricBatch, limit: u32) -> Result<Option<String>> {
    let names: BTreeSet<&str> = batch.epochs.iter().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    let mut known = tx.prepare_cached("SELECT 1 FROM metric_names WHERE sweep = ?1 AND metric = ?2")?;
    let mut new = Vec::new();
    for name in names {
        if known.query_row(params![sweep, name], |_| Ok(())).optional()?.is_none() {
            new.push(name);
        }
    }
    if new.is_empty() {
        return Ok(None);
    }
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM metric_names WHERE sweep = ?1", [sweep], |r| r.get(0))?;
    if count + new.len() as i64 > i64::from(limit) {
        return Ok(Some(format!(
            "reported {} new metric names (first {}) beyond the limit of {limit} distinct names per sweep \
             (sweep `{sweep}` has {count}); report fewer names, or raise the coordinator's --max-metric-names",
            new.len(),
            crate::convert::quoted(new[0]),
        )));
    }
    let mut insert = tx.prepare_cached("INSERT INTO metric_names (sweep, metric) VALUES (?1, ?2)")?;
    for name in new {
        insert.execute(params![sweep, name])?;
    }
    Ok(None)
}
