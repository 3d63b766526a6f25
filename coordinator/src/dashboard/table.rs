//! One sweep's trials held in memory by column, for the dashboard's table, parallel coordinates and
//! importances: sorting or filtering 100,000 trials is a pass over a few vectors instead of a
//! query per request. Kept current from what changed (trials by version, finals by metric row), so
//! keeping it costs what the sweep changes, not what it holds.

use crate::results::TrialRow;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A parameter's value in one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Missing,
    Num(f64),
    Text(Arc<str>),
}

impl Cell {
    fn of(value: &Value, texts: &mut Texts) -> Cell {
        match value {
            Value::Null => Cell::Missing,
            Value::Number(n) => n.as_f64().map_or(Cell::Missing, Cell::Num),
            Value::Bool(b) => Cell::Text(texts.get(if *b { "true" } else { "false" })),
            Value::String(s) => Cell::Text(texts.get(s)),
            other => Cell::Text(texts.get(&other.to_string())),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Cell::Missing => Value::Null,
            Cell::Num(x) => number(*x),
            Cell::Text(s) => Value::String(s.to_string()),
        }
    }
}

/// A finite number as JSON, anything else as null (JSON has no NaN).
pub fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Strings that repeat across trials (states, agents, categorical values) are held once.
#[derive(Default)]
struct Texts(HashMap<Box<str>, Arc<str>>);

impl Texts {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(t) = self.0.get(s) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(s);
        self.0.insert(Box::from(s), t.clone());
        t
    }
}

/// A trial's own fields, beside its parameters and finals.
#[derive(Debug, Clone)]
pub struct Head {
    pub trial_id: Arc<str>,
    pub state: Arc<str>,
    pub attempts: i32,
    pub agent: Option<Arc<str>>,
    pub started_at_us: Option<i64>,
    pub duration_s: Option<f64>,
    pub rung: Option<i32>,
}

pub struct Column<T> {
    pub name: String,
    pub values: Vec<T>,
}

/// Most distinct parameter or metric names a table keeps; the store bounds metric names per sweep
/// (`--max-metric-names`) and a sweep file its parameters, so this only guards memory.
pub const MAX_COLUMNS: usize = 4096;

#[derive(Default)]
pub struct SweepTable {
    /// The sweep's trial version and metric row this table is current with.
    pub version: i64,
    pub metric_seq: i64,
    pub heads: Vec<Head>,
    slot: HashMap<Arc<str>, usize>,
    pub params: Vec<Column<Cell>>,
    pub metrics: Vec<Column<f64>>,
    param_slot: HashMap<String, usize>,
    metric_slot: HashMap<String, usize>,
    texts: Texts,
}

impl SweepTable {
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    pub fn slot_of(&self, trial_id: &str) -> Option<usize> {
        self.slot.get(trial_id).copied()
    }

    pub fn param(&self, name: &str) -> Option<&Column<Cell>> {
        self.param_slot.get(name).map(|&i| &self.params[i])
    }

    pub fn metric(&self, name: &str) -> Option<&Column<f64>> {
        self.metric_slot.get(name).map(|&i| &self.metrics[i])
    }

    /// Adds or replaces trials (a row read again replaces the one held), with their finals.
    pub fn upsert(&mut self, rows: &[TrialRow]) {
        for row in rows {
            let at = match self.slot.get(row.trial_id.as_str()) {
                Some(&at) => at,
                None => self.push_trial(&row.trial_id),
            };
            let texts = &mut self.texts;
            self.heads[at] = Head {
                trial_id: self.heads[at].trial_id.clone(),
                state: texts.get(&row.status),
                attempts: row.attempts,
                agent: row.agent.as_deref().map(|a| texts.get(a)),
                started_at_us: row.started_at_us,
                duration_s: row.duration_s,
                rung: row.rung,
            };
            for (name, value) in &row.params {
                if let Some(col) = self.param_column(name) {
                    let cell = Cell::of(value, &mut self.texts);
                    self.params[col].values[at] = cell;
                }
            }
            for (name, value) in &row.finals {
                self.set_final(at, name, *value);
            }
        }
    }

    /// Sets one final value of a trial already held; values of unknown trials wait for their row.
    pub fn set_final_of(&mut self, trial_id: &str, metric: &str, value: f64) {
        if let Some(at) = self.slot_of(trial_id) {
            self.set_final(at, metric, value);
        }
    }

    fn set_final(&mut self, at: usize, metric: &str, value: f64) {
        let col = match self.metric_slot.get(metric) {
            Some(&c) => c,
            None if self.metrics.len() < MAX_COLUMNS => {
                self.metrics.push(Column { name: metric.to_string(), values: vec![f64::NAN; self.heads.len()] });
                self.metric_slot.insert(metric.to_string(), self.metrics.len() - 1);
                self.metrics.len() - 1
            }
            None => return,
        };
        self.metrics[col].values[at] = value;
    }

    fn param_column(&mut self, name: &str) -> Option<usize> {
        if let Some(&c) = self.param_slot.get(name) {
            return Some(c);
        }
        if self.params.len() >= MAX_COLUMNS {
            return None;
        }
        self.params.push(Column { name: name.to_string(), values: vec![Cell::Missing; self.heads.len()] });
        self.param_slot.insert(name.to_string(), self.params.len() - 1);
        Some(self.params.len() - 1)
    }

    fn push_trial(&mut self, trial_id: &str) -> usize {
        let id: Arc<str> = Arc::from(trial_id);
        let state = self.texts.get("pending");
        self.heads.push(Head {
            trial_id: id.clone(),
            state,
            attempts: 0,
            agent: None,
            started_at_us: None,
            duration_s: None,
            rung: None,
        });
        for c in &mut self.params {
            c.values.push(Cell::Missing);
        }
        for c in &mut self.metrics {
            c.values.push(f64::NAN);
        }
        self.slot.insert(id, self.heads.len() - 1);
        self.heads.len() - 1
    }

    /// Parameters that vary across the trials: the ones worth a column, an axis or an importance.
    pub fn varying_params(&self) -> Vec<&Column<Cell>> {
        self.params.iter().filter(|c| c.values.iter().skip(1).any(|v| *v != c.values[0])).collect()
    }
}

/// Trials as the store reads them, for the dashboard's unit tests.
#[cfg(test)]
pub(super) mod testing {
    use crate::results::TrialRow;
    use serde_json::json;

    /// A trial with parameters `lr`, `optimizer` and a `seed` that never varies, and `test_acc`.
    pub fn row(id: &str, status: &str, lr: f64, opt: &str, acc: Option<f64>) -> TrialRow {
        TrialRow {
            sweep: "s".into(),
            trial_id: id.into(),
            workload: "w".into(),
            status: status.into(),
            attempts: 1,
            agent: None,
            started_at_us: None,
            finished_at_us: None,
            duration_s: None,
            params: json!({"lr": lr, "optimizer": opt, "seed": 0}).as_object().unwrap().clone(),
            finals: acc.map(|a| [("test_acc".to_string(), a)].into_iter().collect()).unwrap_or_default(),
            last_error: None,
            exit_code: None,
            version: 1,
            rung: None,
            epochs_budget: None,
            parent_trial_id: None,
            copied_epoch: None,
            generation: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::row;
    use super::*;

    #[test]
    fn rows_read_again_replace_the_ones_held_and_new_metrics_get_a_column() {
        let mut t = SweepTable::default();
        t.upsert(&[row("a", "running", 0.1, "sgd", None), row("b", "pending", 0.01, "adam", None)]);
        assert_eq!(t.len(), 2);
        assert!(t.metric("test_acc").is_none());
        t.upsert(&[row("a", "succeeded", 0.1, "sgd", Some(0.9))]);
        assert_eq!(t.len(), 2, "a row read again is not a new trial");
        assert_eq!(&*t.heads[0].state, "succeeded");
        let acc = t.metric("test_acc").unwrap();
        assert_eq!(acc.values[0], 0.9);
        assert!(acc.values[1].is_nan(), "b has reported nothing");
        t.set_final_of("b", "test_acc", 0.5);
        t.set_final_of("unknown", "test_acc", 0.5);
        assert_eq!(t.metric("test_acc").unwrap().values[1], 0.5);
        assert_eq!(t.param("optimizer").unwrap().values[1], Cell::Text(Arc::from("adam")));
        let varying: Vec<&str> = t.varying_params().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(varying, ["lr", "optimizer"], "seed is the same in every trial");
    }
}
