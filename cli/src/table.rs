//! Results as a table, CSV or JSON. The table shows the parameters that vary across trials and
//! every final metric; when trials differ by `seed`, a second table averages over seeds.
//! Table and CSV cells show control and bidirectional formatting characters escaped
//! (`sweep_spec::text::escape`), so a name or value cannot drive the terminal; JSON escapes them
//! as JSON does (`\u001b`, `sweep_spec::text::escape_json`).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use sweep_results::TrialRow;
use sweep_spec::text::escape;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The parameter that names a replicate rather than a configuration.
const SEED: &str = "seed";

pub fn render(rows: &[TrialRow], format: Format) -> String {
    match format {
        Format::Json => {
            let out: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "trial_id": r.trial_id, "status": r.status, "attempts": r.attempts, "agent": r.agent,
                        "duration_s": r.duration_s, "params": r.params,
                        "finals": r.finals.iter().map(|(k, v)| (k.clone(), json_number(*v))).collect::<Map<_, _>>(),
                        "last_error": r.last_error.as_deref().map(sweep_results::last_error_cell),
                        "exit_code": r.exit_code,
                        "parent_trial_id": r.parent_trial_id, "copied_epoch": r.copied_epoch,
                        "generation": r.generation,
                    })
                })
                .collect();
            sweep_spec::text::escape_json(&serde_json::to_string_pretty(&out).expect("json renders")).into_owned()
                + "\n"
        }
        Format::Csv => {
            let params = param_names(rows, false);
            let metrics = metric_names(rows);
            let mut head = vec!["trial_id".to_string(), "status".into(), "attempts".into()];
            head.extend(params.iter().cloned());
            head.extend(metrics.iter().map(|m| format!("final_{m}")));
            let mut out = csv_line(&head);
            for r in rows {
                let mut cells = vec![r.trial_id.clone(), r.status.clone(), r.attempts.to_string()];
                cells.extend(params.iter().map(|p| r.params.get(p).map(plain).unwrap_or_default()));
                cells.extend(metrics.iter().map(|m| r.finals.get(m).map(|v| v.to_string()).unwrap_or_default()));
                out.push_str(&csv_line(&cells));
            }
            out
        }
        Format::Table => table(rows),
    }
}

fn table(rows: &[TrialRow]) -> String {
    if rows.is_empty() {
        return "no trials\n".to_string();
    }
    let params = param_names(rows, true);
    let metrics = metric_names(rows);
    let mut out = String::new();
    let fixed = fixed_params(rows);
    if !fixed.is_empty() {
        let _ = writeln!(
            out,
            "fixed: {}",
            fixed.iter().map(|(k, v)| format!("{}={}", escape(k), escape(&plain(v)))).collect::<Vec<_>>().join(" ")
        );
    }
    // A PBT sweep: which trial each copy started from, and at which epoch.
    let copies = rows.iter().any(|r| r.parent_trial_id.is_some());
    let mut head = vec!["trial".to_string(), "status".into(), "att".into()];
    if copies {
        head.push("copy of".into());
    }
    head.extend(params.iter().cloned());
    head.extend(metrics.iter().cloned());
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.trial_id.clone(), r.status.clone(), r.attempts.to_string()];
            if copies {
                cells.push(match (&r.parent_trial_id, r.copied_epoch) {
                    (Some(parent), Some(epoch)) => format!("{}@{epoch}", escape(parent)),
                    _ => "-".into(),
                });
            }
            cells.extend(params.iter().map(|p| r.params.get(p).map(plain).unwrap_or_default()));
            cells.extend(metrics.iter().map(|m| r.finals.get(m).map(|v| num(*v)).unwrap_or_else(|| "-".into())));
            cells
        })
        .collect();
    out.push_str(&aligned(&head, &body));

    let group_by: Vec<String> = params.iter().filter(|p| p.as_str() != SEED).cloned().collect();
    if params.iter().any(|p| p == SEED) && !group_by.is_empty() && !metrics.is_empty() {
        out.push('\n');
        out.push_str(&mean_over_seeds(rows, &group_by, &metrics));
    }
    out
}

/// Mean of each final metric per configuration, over the seeds that succeeded.
fn mean_over_seeds(rows: &[TrialRow], group_by: &[String], metrics: &[String]) -> String {
    let mut groups: Vec<(Vec<String>, Vec<&TrialRow>)> = Vec::new();
    for r in rows.iter().filter(|r| r.status == "succeeded") {
        let key: Vec<String> = group_by.iter().map(|p| r.params.get(p).map(plain).unwrap_or_default()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    let mut head = group_by.to_vec();
    head.push("seeds".into());
    head.extend(metrics.iter().map(|m| format!("mean {m}")));
    let body: Vec<Vec<String>> = groups
        .into_iter()
        .map(|(key, members)| {
            let mut cells = key;
            cells.push(members.len().to_string());
            for m in metrics {
                let values: Vec<f64> = members.iter().filter_map(|r| r.finals.get(m).copied()).collect();
                let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                cells.push(if values.is_empty() { "-".into() } else { num(mean) });
            }
            cells
        })
        .collect();
    format!("mean over seeds:\n{}", aligned(&head, &body))
}

/// Parameter names in first-seen order; with `varying_only`, those whose value differs somewhere.
fn param_names(rows: &[TrialRow], varying_only: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        for k in r.params.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    if varying_only {
        names.retain(|n| rows.iter().any(|r| r.params.get(n) != rows[0].params.get(n)));
    }
    names
}

fn fixed_params(rows: &[TrialRow]) -> BTreeMap<String, Value> {
    let varying: BTreeSet<String> = param_names(rows, true).into_iter().collect();
    rows[0].params.iter().filter(|(k, _)| !varying.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Metric names, test metrics first, then training metrics, then costs and the rest.
fn metric_names(rows: &[TrialRow]) -> Vec<String> {
    let set: BTreeSet<&String> = rows.iter().flat_map(|r| r.finals.keys()).collect();
    let mut names: Vec<String> = set.into_iter().cloned().collect();
    names.sort_by_key(|n| {
        (
            if n.starts_with("test_") {
                0
            } else if n.starts_with("train_") {
                1
            } else {
                2
            },
            n.clone(),
        )
    });
    names
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn json_number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

fn csv_line(cells: &[String]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| escape(c))
        .map(|c| if c.contains([',', '"']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.into_owned() })
        .collect();
    quoted.join(",") + "\n"
}

fn aligned(head: &[String], body: &[Vec<String>]) -> String {
    let shown = |row: &[String]| row.iter().map(|c| escape(c).into_owned()).collect::<Vec<_>>();
    let (head, body) = (shown(head), body.iter().map(|r| shown(r)).collect::<Vec<_>>());
    let widths: Vec<usize> = (0..head.len())
        .map(|i| body.iter().map(|r| r[i].chars().count()).chain([head[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
            + "\n"
    };
    let mut out = line(&head);
    out.push_str(&line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()));
    for r in &body {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(width: i64, seed: i64, err: f64) -> TrialRow {
        let mut params = Map::new();
        params.insert("width".into(), json!(width));
        params.insert("seed".into(), json!(seed));
        params.insert("n".into(), json!(100));
        TrialRow {
            sweep: "s".into(),
            trial_id: format!("t{width}-{seed}"),
            workload: "mlp".into(),
            status: "succeeded".into(),
            attempts: 1,
            agent: None,
            started_at_us: None,
            finished_at_us: None,
            duration_s: None,
            params,
            finals: [("test_error".to_string(), err)].into(),
            last_error: None,
            exit_code: Some(0),
            version: 0,
            rung: None,
            epochs_budget: None,
            parent_trial_id: None,
            copied_epoch: None,
            generation: 0,
        }
    }

    #[test]
    fn table_shows_varying_params_and_means_over_seeds() {
        let rows = vec![row(10, 0, 0.2), row(10, 1, 0.4), row(20, 0, 0.6), row(20, 1, 0.8)];
        let t = render(&rows, Format::Table);
        assert!(t.starts_with("fixed: n=100\n"), "{t}");
        assert!(t.contains("mean over seeds"), "{t}");
        let mean_line = t.lines().find(|l| l.starts_with("10 ") && l.contains("0.3000")).expect(&t);
        assert!(mean_line.contains(" 2 "), "{mean_line}");
        assert!(t.lines().any(|l| l.starts_with("20 ") && l.contains("0.7000")), "{t}");
    }

    #[test]
    fn csv_has_every_param_and_final() {
        let csv = render(&[row(10, 0, 0.25)], Format::Csv);
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), "trial_id,status,attempts,n,seed,width,final_test_error");
        assert_eq!(lines.next().unwrap(), "t10-0,succeeded,1,100,0,10,0.25");
    }

    #[test]
    fn json_round_trips() {
        let v: Value = serde_json::from_str(&render(&[row(10, 0, 0.25)], Format::Json)).unwrap();
        assert_eq!(v[0]["finals"]["test_error"], json!(0.25));
        assert_eq!(v[0]["params"]["width"], json!(10));
        assert_eq!((&v[0]["exit_code"], &v[0]["last_error"]), (&json!(0), &Value::Null));
    }

    /// A failed trial says why in JSON: its exit code and the end of its stderr, escaped and
    /// bounded whether it came from the files or from the coordinator.
    #[test]
    fn json_carries_the_failure_bounded_and_escaped() {
        let mut r = row(10, 0, 0.25);
        r.status = "failed".into();
        r.exit_code = Some(2);
        r.last_error = Some(format!("exit code 2: {}\nKeyError: 'lr'\u{1b}[0m", "x".repeat(10_000)));
        let v: Value = serde_json::from_str(&render(&[r], Format::Json)).unwrap();
        assert_eq!(v[0]["exit_code"], json!(2));
        let error = v[0]["last_error"].as_str().unwrap();
        assert!(
            error.len() <= sweep_results::MAX_LAST_ERROR && error.ends_with("\nKeyError: 'lr'\\u{1b}[0m"),
            "{error:.80}"
        );
    }

    #[test]
    fn terminal_sequences_in_names_and_values_are_escaped_in_table_and_csv() {
        let mut r = row(10, 0, 0.25);
        r.trial_id = "t\x1b]0;title\x07".into();
        r.params.insert("n".into(), json!("\x1b[2J\nx"));
        r.finals.insert("acc\x1b[2J\u{202e}".into(), 0.5);
        let mut other = row(20, 0, 0.5);
        other.params.insert("n".into(), json!("\x1b[2J\nx"));
        for format in [Format::Table, Format::Csv] {
            let out = render(&[r.clone(), other.clone()], format);
            assert!(!out.contains('\x1b') && !out.contains('\x07') && !out.contains('\u{202e}'), "{out}");
            assert!(out.contains("acc\\u{1b}[2J\\u{202e}"), "{out}");
            assert!(out.contains("t\\u{1b}]0;title\\u{7}"), "{out}");
            assert!(out.contains("\\u{1b}[2J\\nx"), "{out}");
            // One line per trial plus the header (and the rule and fixed line of the table).
            assert!(out.lines().count() <= 6, "{out}");
        }
        let json = render(&[r], Format::Json);
        assert!(
            !json.contains(['\x1b', '\u{202e}']) && json.contains("\\u001b[2J") && json.contains("\\u202e"),
            "{json}"
        );
    }
}
