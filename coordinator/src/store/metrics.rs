//! Metric rows: stored once per (sweep, trial, attempt, epoch, metric), numbered in arrival order
//! so the Parquet sink can write each row exactly once.

use super::Store;
use crate::error::Result;
use crate::results::MetricRow;
use rusqlite::params;
use sweep_spec::EpochRecord;

/// The epochs one report carries, under one lease, from the registration holding `session`.
pub struct MetricBatch {
    pub lease_id: i64,
    pub session: crate::session::SessionHash,
    pub epochs: Vec<EpochRecord>,
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
    /// Refused unless the report comes from the lease's holder and its trial has not finished
    /// (`sessions::admit_report`).
    pub fn report_metrics(&mut self, batch: &MetricBatch, recorded_at_us: i64) -> Result<(u32, u32)> {
        let tx = self.conn.transaction()?;
        super::sessions::admit_report(&tx, batch.lease_id, &batch.session)?;
        let (sweep, trial_id, attempt) = Store::attempt_of_lease(&tx, batch.lease_id)?;
        let (mut added, mut duplicate) = (0u32, 0u32);
        let mut last_seq = None;
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
                        final_value.execute(params![sweep, trial_id, metric, record.epoch, attempt, value])?;
                    } else {
                        duplicate += 1;
                    }
                }
            }
        }
        if let Some(seq) = last_seq {
            tx.execute("UPDATE sweeps SET last_metric_seq = ?2 WHERE name = ?1", params![sweep, seq])?;
        }
        tx.commit()?;
        Ok((added, duplicate))
    }

    /// Up to `limit` rows of `sweep` with a sequence number above `after`, in order.
    pub fn metrics_after(&self, sweep: &str, after: i64, limit: u32) -> Result<Vec<StoredMetric>> {
        let mut q = self.conn.prepare_cached(
            "SELECT seq, trial_id, attempt, epoch, step, metric, value, recorded_at_us
             FROM metrics WHERE sweep = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = q.query_map(params![sweep, after, limit], |r| {
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
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
