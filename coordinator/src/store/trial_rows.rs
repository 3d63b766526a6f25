//! Trials as users read them: one row each with its parameters and final metrics, the content of
//! `trials.parquet`, of its change parts and of `sweep results`. Read in pages or by what changed,
//! so that no single read of a million-trial sweep has to hold all of it.

use super::sweeps::parse_spec;
use super::Store;
use crate::error::Result;
use crate::results::TrialRow;
use rusqlite::params;
use std::collections::HashMap;

/// Which trials of a sweep to read, always in queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    All,
    /// Those whose version is above this one: what changed since then.
    ChangedAfter(i64),
    /// `limit` trials from position `offset` in the queue.
    Page {
        offset: u64,
        limit: u64,
    },
}

impl Chosen {
    /// The tail of a `trials t WHERE t.sweep = ?1` query for these trials; its numbers, from `?2`
    /// on, are [`Chosen::numbers`].
    fn clause(self) -> &'static str {
        match self {
            Chosen::All => "ORDER BY t.idx",
            Chosen::ChangedAfter(_) => "AND t.version > ?2 ORDER BY t.idx",
            Chosen::Page { .. } => "ORDER BY t.idx LIMIT ?2 OFFSET ?3",
        }
    }

    /// The numbers a query for these trials binds after the sweep's name.
    pub(super) fn numbers(self) -> Vec<i64> {
        let int = |n: u64| n.min(i64::MAX as u64) as i64;
        match self {
            Chosen::All => vec![],
            Chosen::ChangedAfter(v) => vec![v],
            Chosen::Page { offset, limit } => vec![int(limit), int(offset)],
        }
    }
}

impl Store {
    /// The chosen trials of `sweep`, with their final metrics and their last attempt's exit code.
    /// Read in one transaction, so finals and states are from the same moment.
    pub fn trial_rows(&self, sweep: &str, chosen: Chosen) -> Result<Vec<TrialRow>> {
        self.summary(sweep)?;
        let tx = self.conn.unchecked_transaction()?;
        let (clause, numbers) = (chosen.clause(), chosen.numbers());
        let select = format!(
            "SELECT t.trial_id, t.workload, t.state, t.attempt, t.agent, t.started_at_ms, t.finished_at_ms, t.spec,
                    t.last_error, t.version,
                    (SELECT a.exit_code FROM attempts a WHERE a.sweep = t.sweep AND a.trial_id = t.trial_id
                     ORDER BY a.lease_id DESC LIMIT 1)
             FROM trials t WHERE t.sweep = ?1 {clause}"
        );
        let mut rows = Vec::new();
        let mut at = HashMap::new();
        {
            let mut q = tx.prepare_cached(&select)?;
            let args = std::iter::once(rusqlite::types::Value::from(sweep.to_string()))
                .chain(numbers.into_iter().map(rusqlite::types::Value::from));
            let mut cursor = q.query(rusqlite::params_from_iter(args))?;
            while let Some(r) = cursor.next()? {
                let trial_id: String = r.get(0)?;
                let spec: String = r.get(7)?;
                let (started, finished): (Option<i64>, Option<i64>) = (r.get(5)?, r.get(6)?);
                let duration_s = match (started, finished) {
                    (Some(s), Some(f)) if f >= s => Some((f - s) as f64 / 1000.0),
                    _ => None,
                };
                at.insert(trial_id.clone(), rows.len());
                rows.push(TrialRow {
                    sweep: sweep.to_string(),
                    trial_id,
                    workload: r.get(1)?,
                    status: r.get(2)?,
                    attempts: r.get(3)?,
                    agent: r.get(4)?,
                    started_at_us: started.map(|ms| ms * 1000),
                    finished_at_us: finished.map(|ms| ms * 1000),
                    duration_s,
                    params: parse_spec(&spec)?.params,
                    finals: Default::default(),
                    last_error: r.get(8)?,
                    version: r.get(9)?,
                    exit_code: r.get(10)?,
                });
            }
        }
        // The finals of the chosen trials: all of the sweep's when most are chosen, else looked up
        // trial by trial through the primary key.
        let mut fill = |trial: String, metric: String, value: Option<f64>| {
            if let Some(&i) = at.get(&trial) {
                rows[i].finals.insert(metric, value.unwrap_or(f64::NAN));
            }
        };
        if matches!(chosen, Chosen::All) {
            let mut q = tx.prepare_cached("SELECT trial_id, metric, value FROM finals WHERE sweep = ?1")?;
            let mut cursor = q.query([sweep])?;
            while let Some(r) = cursor.next()? {
                fill(r.get(0)?, r.get(1)?, r.get(2)?);
            }
        } else {
            let mut q = tx.prepare_cached("SELECT metric, value FROM finals WHERE sweep = ?1 AND trial_id = ?2")?;
            let ids: Vec<String> = at.keys().cloned().collect();
            for id in ids {
                let mut cursor = q.query(params![sweep, id])?;
                while let Some(r) = cursor.next()? {
                    fill(id.clone(), r.get(0)?, r.get(1)?);
                }
            }
        }
        drop(tx);
        Ok(rows)
    }
}
