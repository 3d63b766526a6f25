//! The trial table's questions: which trials (states, conditions on parameters and final metrics,
//! an id prefix), in what order, which page. Everything here comes from a URL, so every part is
//! bounded and an unknown name is refused with the name.

use super::table::{Cell, SweepTable};
use std::cmp::Ordering;

/// Longest filter expression accepted.
pub const MAX_WHERE_BYTES: usize = 1024;
/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 16;
/// Most rows one page holds.
pub const MAX_PAGE: usize = 500;

/// A column of the table: a field of the trial, a parameter or a final metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Index,
    TrialId,
    State,
    Attempts,
    Duration,
    Param(String),
    Metric(String),
}

impl Key {
    /// `index`, `trial_id`, `state`, `attempts`, `duration_s`, `param:NAME` or `metric:NAME`; a
    /// bare name is a parameter if the sweep has one of that name, else a metric.
    pub fn parse(text: &str, table: &SweepTable) -> Result<Key, String> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix("param:") {
            return table.param(name).map(|_| Key::Param(name.into())).ok_or_else(|| unknown("parameter", name));
        }
        if let Some(name) = text.strip_prefix("metric:") {
            return table.metric(name).map(|_| Key::Metric(name.into())).ok_or_else(|| unknown("metric", name));
        }
        Ok(match text {
            "index" => Key::Index,
            "trial_id" => Key::TrialId,
            "state" => Key::State,
            "attempts" => Key::Attempts,
            "duration_s" => Key::Duration,
            name if table.param(name).is_some() => Key::Param(name.into()),
            name if table.metric(name).is_some() => Key::Metric(name.into()),
            name => return Err(unknown("column, parameter or metric", name)),
        })
    }

    fn value(&self, table: &SweepTable, at: usize) -> Cell {
        let h = &table.heads[at];
        match self {
            Key::Index => Cell::Num(at as f64),
            Key::TrialId => Cell::Text(h.trial_id.clone()),
            Key::State => Cell::Text(h.state.clone()),
            Key::Attempts => Cell::Num(h.attempts as f64),
            Key::Duration => h.duration_s.map_or(Cell::Missing, Cell::Num),
            Key::Param(p) => table.param(p).map_or(Cell::Missing, |c| c.values[at].clone()),
            Key::Metric(m) => table.metric(m).map_or(Cell::Missing, |c| {
                let v = c.values[at];
                if v.is_nan() {
                    Cell::Missing
                } else {
                    Cell::Num(v)
                }
            }),
        }
    }
}

fn unknown(what: &str, name: &str) -> String {
    let shown: String = name.chars().take(64).collect();
    format!("this sweep has no {what} named `{shown}`")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    key: Key,
    op: Op,
    value: String,
}

/// `lr < 0.01, optimizer = adam, test_acc >= 0.9`: conditions joined by commas, all of which hold.
pub fn parse_where(text: &str, table: &SweepTable) -> Result<Vec<Condition>, String> {
    if text.len() > MAX_WHERE_BYTES {
        return Err(format!("the filter is {} bytes; at most {MAX_WHERE_BYTES} are accepted", text.len()));
    }
    let parts: Vec<&str> = text.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.len() > MAX_CONDITIONS {
        return Err(format!("the filter has {} conditions; at most {MAX_CONDITIONS} are accepted", parts.len()));
    }
    parts
        .into_iter()
        .map(|part| {
            // Two-character operators first, so `<=` is not read as `<` then `=...`.
            const OPS: [(&str, Op); 7] = [
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("!=", Op::Ne),
                ("==", Op::Eq),
                ("<", Op::Lt),
                (">", Op::Gt),
                ("=", Op::Eq),
            ];
            let (at, sym, op) = OPS
                .iter()
                .filter_map(|(sym, op)| part.find(sym).map(|at| (at, *sym, *op)))
                .min_by_key(|(at, sym, _)| (*at, usize::MAX - sym.len()))
                .ok_or_else(|| format!("`{part}`: a condition is NAME OP VALUE, with OP one of = != < <= > >="))?;
            let key = Key::parse(&part[..at], table)?;
            Ok(Condition { key, op, value: part[at + sym.len()..].trim().to_string() })
        })
        .collect()
}

impl Condition {
    fn holds(&self, table: &SweepTable, at: usize) -> bool {
        let cell = self.key.value(table, at);
        let ord = match (&cell, self.value.parse::<f64>()) {
            (Cell::Missing, _) => return self.op == Op::Ne,
            (Cell::Num(x), Ok(y)) => x.partial_cmp(&y),
            (Cell::Num(_), Err(_)) => return self.op == Op::Ne,
            (Cell::Text(s), _) => Some((**s).cmp(self.value.as_str())),
        };
        let Some(ord) = ord else { return false };
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

/// What one request for the table asks.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    /// Only trials in these states; empty: all.
    pub states: Vec<String>,
    pub conditions: Vec<Condition>,
    /// Only trials whose id starts with this.
    pub id_prefix: Option<String>,
    pub sort: Option<Key>,
    pub descending: bool,
}

/// The positions of the trials that match, in the asked order. Missing values sort last in either
/// direction, so the best trials stay on the first page whichever way a metric goes.
pub fn matching(table: &SweepTable, ask: &Ask) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..table.len())
        .filter(|&at| {
            let h = &table.heads[at];
            (ask.states.is_empty() || ask.states.iter().any(|s| **s == *h.state))
                && ask.id_prefix.as_deref().is_none_or(|p| h.trial_id.starts_with(p))
                && ask.conditions.iter().all(|c| c.holds(table, at))
        })
        .collect();
    if let Some(key) = &ask.sort {
        let keys: Vec<Cell> = rows.iter().map(|&at| key.value(table, at)).collect();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| compare(&keys[a], &keys[b], ask.descending).then(rows[a].cmp(&rows[b])));
        rows = order.into_iter().map(|i| rows[i]).collect();
    }
    rows
}

fn compare(a: &Cell, b: &Cell, descending: bool) -> Ordering {
    let flip = |o: Ordering| if descending { o.reverse() } else { o };
    match (a, b) {
        (Cell::Missing, Cell::Missing) => Ordering::Equal,
        (Cell::Missing, _) => Ordering::Greater,
        (_, Cell::Missing) => Ordering::Less,
        (Cell::Num(x), Cell::Num(y)) => flip(x.total_cmp(y)),
        (Cell::Num(_), Cell::Text(_)) => flip(Ordering::Less),
        (Cell::Text(_), Cell::Num(_)) => flip(Ordering::Greater),
        (Cell::Text(x), Cell::Text(y)) => flip(x.cmp(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::testing::row;
    use super::*;

    fn table() -> SweepTable {
        let mut t = SweepTable::default();
        t.upsert(&[
            row("t0", "succeeded", 0.1, "sgd", Some(0.7)),
            row("t1", "failed", 0.01, "adam", None),
            row("t2", "succeeded", 0.001, "adam", Some(0.9)),
            row("t3", "stopped_early", 0.05, "sgd", Some(0.4)),
        ]);
        t
    }

    fn ids(t: &SweepTable, rows: &[usize]) -> Vec<String> {
        rows.iter().map(|&i| t.heads[i].trial_id.to_string()).collect()
    }

    #[test]
    fn sorts_by_a_metric_with_missing_values_last_either_way() {
        let t = table();
        let mut ask = Ask { sort: Some(Key::parse("test_acc", &t).unwrap()), descending: true, ..Ask::default() };
        assert_eq!(ids(&t, &matching(&t, &ask)), ["t2", "t0", "t3", "t1"]);
        ask.descending = false;
        assert_eq!(ids(&t, &matching(&t, &ask)), ["t3", "t0", "t2", "t1"]);
    }

    #[test]
    fn filters_by_state_condition_and_prefix() {
        let t = table();
        let ask = Ask {
            states: vec!["succeeded".into(), "failed".into()],
            conditions: parse_where("optimizer = adam, lr >= 0.001", &t).unwrap(),
            ..Ask::default()
        };
        assert_eq!(ids(&t, &matching(&t, &ask)), ["t1", "t2"]);
        let ask = Ask { conditions: parse_where("test_acc>0.5", &t).unwrap(), ..Ask::default() };
        assert_eq!(ids(&t, &matching(&t, &ask)), ["t0", "t2"], "a missing value matches no comparison");
        let ask = Ask { id_prefix: Some("t3".into()), ..Ask::default() };
        assert_eq!(ids(&t, &matching(&t, &ask)), ["t3"]);
        let hide_stopped = Ask { conditions: parse_where("state != stopped_early", &t).unwrap(), ..Ask::default() };
        assert_eq!(matching(&t, &hide_stopped).len(), 3);
    }

    #[test]
    fn refuses_unknown_names_bad_operators_and_oversized_filters() {
        let t = table();
        assert!(parse_where("momentum = 0.9", &t).unwrap_err().contains("`momentum`"));
        assert!(parse_where("lr ~ 3", &t).unwrap_err().contains("NAME OP VALUE"));
        assert!(parse_where("param:test_acc > 1", &t).unwrap_err().contains("no parameter"));
        let many = vec!["lr > 0"; MAX_CONDITIONS + 1].join(",");
        assert!(parse_where(&many, &t).unwrap_err().contains("at most 16"));
        let long = format!("optimizer = {}", "x".repeat(MAX_WHERE_BYTES));
        assert!(parse_where(&long, &t).unwrap_err().contains("bytes"));
        assert!(Key::parse(&"<script>".repeat(100), &t).unwrap_err().len() < 200, "an echoed name is cut");
    }
}
