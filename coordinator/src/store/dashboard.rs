//! What the web dashboard reads beyond the listings the CLI shares: the final values that changed
//! since a metric row, learning curves of a few trials, and the compute a sweep has used. Each is
//! an indexed read, so an open page costs the same at 100,000 trials as at ten.

use super::Store;
use crate::error::Result;
use rusqlite::params;

/// One point of a learning curve: the value a trial reported for a metric at an epoch, from its
/// latest attempt that reported that epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub trial_id: String,
    pub metric: String,
    pub epoch: i64,
    pub value: f64,
}

/// The compute a sweep used: wall-clock hours of all its attempts (a running one counts up to
/// now), and the same weighted by the GPUs each trial holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ComputeHours {
    pub trial_hours: f64,
    pub gpu_hours: f64,
}

const MS_PER_HOUR: f64 = 3_600_000.0;

/// A trial's final value of a metric: (trial id, metric, value).
pub type FinalValue = (String, String, f64);

impl Store {
    /// The final value of every (trial, metric) of `sweep` that a metric row numbered above `seq`
    /// changed, with the highest such row number (`seq` when there are none).
    pub fn finals_changed_after(&self, sweep: &str, seq: i64) -> Result<(Vec<FinalValue>, i64)> {
        let _snapshot = self.conn.unchecked_transaction()?;
        let upto: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(seq), ?2) FROM metrics WHERE sweep = ?1 AND seq > ?2",
            params![sweep, seq],
            |r| r.get(0),
        )?;
        let mut q = self.conn.prepare_cached(
            "SELECT f.trial_id, f.metric, f.value FROM finals f
             WHERE f.sweep = ?1 AND (f.trial_id, f.metric) IN
                   (SELECT DISTINCT trial_id, metric FROM metrics WHERE sweep = ?1 AND seq > ?2)",
        )?;
        let rows = q.query_map(params![sweep, seq], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN)))
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, upto))
    }

    /// The curves of `trials` of `sweep`, of one metric or (None) of all, in epoch order. Where two
    /// attempts reported an epoch, the later attempt's value is the one drawn.
    pub fn curves(&self, sweep: &str, trials: &[String], metric: Option<&str>) -> Result<Vec<CurvePoint>> {
        let mut q = self.conn.prepare_cached(
            "SELECT m.metric, m.epoch, m.value FROM metrics m
             WHERE m.sweep = ?1 AND m.trial_id = ?2 AND (?3 IS NULL OR m.metric = ?3)
               AND NOT EXISTS (SELECT 1 FROM metrics later
                               WHERE later.sweep = m.sweep AND later.trial_id = m.trial_id AND later.epoch = m.epoch
                                 AND later.metric = m.metric AND later.attempt > m.attempt)
             ORDER BY m.metric, m.epoch",
        )?;
        let _snapshot = self.conn.unchecked_transaction()?;
        let mut out = Vec::new();
        for trial in trials {
            let rows = q.query_map(params![sweep, trial, metric], |r| {
                Ok(CurvePoint {
                    trial_id: trial.clone(),
                    metric: r.get(0)?,
                    epoch: r.get(1)?,
                    value: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// The hours `sweep`'s attempts ran, counting those still running up to `now_ms`.
    pub fn compute_hours(&self, sweep: &str, now_ms: i64) -> Result<ComputeHours> {
        let (ms, gpu_ms): (Option<f64>, Option<f64>) = self.conn.query_row(
            "SELECT SUM(span), SUM(span * gpus) FROM (
                 SELECT MAX(COALESCE(a.finished_at_ms, ?2) - a.started_at_ms, 0) AS span, t.gpus AS gpus
                 FROM attempts a JOIN trials t ON t.sweep = a.sweep AND t.trial_id = a.trial_id
                 WHERE a.sweep = ?1 AND a.started_at_ms IS NOT NULL)",
            params![sweep, now_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(ComputeHours {
            trial_hours: ms.unwrap_or(0.0) / MS_PER_HOUR,
            gpu_hours: gpu_ms.unwrap_or(0.0) / MS_PER_HOUR,
        })
    }
}

impl Store {
    /// The trial version and last metric row of `sweep`: what a copy of its trials is current with;
    /// and one past its last queue position.
    pub fn sweep_versions(&self, sweep: &str) -> Result<(i64, i64, u64)> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT trials_version, last_metric_seq,
                        (SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE sweep = ?1)
                 FROM sweeps WHERE name = ?1",
                [sweep],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64)),
            )
            .optional()?
            .ok_or_else(|| crate::error::Error::UnknownSweep(sweep.to_string()))
    }
}
