//! Trials as users read them: one row each with its parameters and final metrics, the content of
//! `trials.parquet`, of its change parts and of `sweep results`. Read in pages or by what changed,
//! so that no single read of a million-trial sweep has to hold all of it.

use super::sweeps::parse_spec;
use super::Store;
use crate::error::Result;
use crate::results::{TrialRow, TrialsTableShape};
use serde_json::Value;
use std::collections::HashMap;

/// Which trials of a sweep to read, always in queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// Those whose version is above this one: what changed since then.
    ChangedAfter(i64),
    /// `limit` trials from position `offset` in the queue.
    Page { offset: u64, limit: u64 },
    /// The trials at queue positions `from..to`: a page found through the index, however deep
    /// into the sweep, where `Page` steps over the `offset` trials before it.
    Positions { from: u64, to: u64 },
}

impl Chosen {
    /// The tail of a `trials t WHERE t.sweep = ?1` query for these trials; its numbers, from `?2`
    /// on, are [`Chosen::numbers`].
    pub(super) fn clause(self) -> &'static str {
        match self {
            Chosen::ChangedAfter(_) => "AND t.version > ?2 ORDER BY t.idx",
            Chosen::Page { .. } => "ORDER BY t.idx LIMIT ?2 OFFSET ?3",
            Chosen::Positions { .. } => "AND t.idx >= ?2 AND t.idx < ?3 ORDER BY t.idx",
        }
    }

    /// The numbers a query for these trials binds after the sweep's name.
    fn numbers(self) -> Vec<i64> {
        let int = |n: u64| n.min(i64::MAX as u64) as i64;
        match self {
            Chosen::ChangedAfter(v) => vec![v],
            Chosen::Page { offset, limit } => vec![int(limit), int(offset)],
            Chosen::Positions { from, to } => vec![int(from), int(to)],
        }
    }
}

/// The sweep's name, then the numbers of `chosen`'s clause.
pub(super) fn args(sweep: &str, chosen: Chosen) -> impl Iterator<Item = rusqlite::types::Value> {
    std::iter::once(sweep.to_string().into()).chain(chosen.numbers().into_iter().map(Into::into))
}

impl Store {
    /// The chosen trials of `sweep`, with their final metrics and their last attempt's exit code.
    /// Read in one transaction, so finals and states are from the same moment.
    pub fn trial_rows(&self, sweep: &str, chosen: Chosen) -> Result<Vec<TrialRow>> {
        self.rows_where(sweep, chosen.clause(), args(sweep, chosen).collect())
    }

    /// One trial of `sweep` as [`Store::trial_rows`] reads it; None when the sweep has no such trial.
    pub fn trial_row(&self, sweep: &str, trial_id: &str) -> Result<Option<TrialRow>> {
        let args = vec![sweep.to_string().into(), trial_id.to_string().into()];
        Ok(self.rows_where(sweep, "AND t.trial_id = ?2", args)?.into_iter().next())
    }

    /// The trials of `sweep` that `clause` (the tail of `FROM trials t WHERE t.sweep = ?1`) picks,
    /// with `args` bound from `?1` on.
    fn rows_where(&self, sweep: &str, clause: &str, args: Vec<rusqlite::types::Value>) -> Result<Vec<TrialRow>> {
        self.known_sweep(sweep)?;
        // Inside [`Store::in_snapshot`] already, or a snapshot of its own.
        let _snapshot = if self.conn.is_autocommit() { Some(self.conn.unchecked_transaction()?) } else { None };
        let conn = &self.conn;
        let select = format!(
            "SELECT t.trial_id, t.workload, t.state, t.attempt, t.agent, t.started_at_ms, t.finished_at_ms, t.spec,
                    t.last_error, t.version, t.rung, t.epochs_budget, t.parent_trial_id, t.copied_epoch, t.generation,
                    (SELECT a.exit_code FROM attempts a WHERE a.sweep = t.sweep AND a.trial_id = t.trial_id
                     ORDER BY a.lease_id DESC LIMIT 1)
             FROM trials t WHERE t.sweep = ?1 {clause}"
        );
        let mut rows = Vec::new();
        let mut at = HashMap::new();
        {
            let mut q = conn.prepare_cached(&select)?;
            let mut cursor = q.query(rusqlite::params_from_iter(args.iter()))?;
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
                    rung: r.get(10)?,
                    epochs_budget: r.get(11)?,
                    parent_trial_id: r.get(12)?,
                    copied_epoch: r.get(13)?,
                    generation: r.get(14)?,
                    exit_code: r.get(15)?,
                });
            }
        }
        // The finals of the chosen trials, each found through the primary key.
        let finals = format!(
            "WITH chosen AS (SELECT t.trial_id FROM trials t WHERE t.sweep = ?1 {clause})
             SELECT f.trial_id, f.metric, f.value FROM chosen c JOIN finals f ON f.sweep = ?1 AND f.trial_id = c.trial_id"
        );
        let mut q = conn.prepare_cached(&finals)?;
        let mut cursor = q.query(rusqlite::params_from_iter(args.iter()))?;
        while let Some(r) = cursor.next()? {
            let (trial, metric, value): (String, String, Option<f64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let Some(&i) = at.get(&trial) {
                rows[i].finals.insert(metric, value.unwrap_or(f64::NAN));
            }
        }
        Ok(rows)
    }

    /// Runs `read` in one read transaction: everything it reads is from the same moment, however
    /// many statements it makes (the pages of a table, and the columns they fill).
    pub fn in_snapshot<T>(&self, read: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let _snapshot = self.conn.unchecked_transaction()?;
        read(self)
    }

    /// The parameter kinds and final metrics of every trial of `sweep`: the columns of its
    /// `trials.parquet`, known before any page of rows is read. SQLite reads the parameters' JSON
    /// types itself; a sample value of each type stands for them.
    pub fn trials_table_shape(&self, sweep: &str) -> Result<TrialsTableShape> {
        let mut shape = TrialsTableShape::default();
        let mut q = self.conn.prepare_cached(
            "SELECT DISTINCT j.key, j.type FROM trials t, json_each(t.spec, '$.params') j WHERE t.sweep = ?1",
        )?;
        let mut cursor = q.query([sweep])?;
        while let Some(r) = cursor.next()? {
            let (name, kind): (String, String) = (r.get(0)?, r.get(1)?);
            let sample = match kind.as_str() {
                "null" => Value::Null,
                "true" | "false" => Value::Bool(true),
                "integer" => Value::from(0i64),
                "real" => Value::from(0.5f64),
                "text" => Value::from(""),
                "array" => Value::Array(vec![]),
                _ => Value::Object(Default::default()),
            };
            shape.param(&name, &sample);
        }
        let mut q = self.conn.prepare_cached("SELECT DISTINCT metric FROM finals WHERE sweep = ?1")?;
        let mut cursor = q.query([sweep])?;
        while let Some(r) = cursor.next()? {
            shape.final_metric(&r.get::<_, String>(0)?);
        }
        Ok(shape)
    }
}
