//! The metric protocol between a trial process and its agent: one JSON object per line on stdout,
//! `{"epoch": 3, "step": 1200, "metrics": {"loss": 0.41, "acc": 0.88}}`. Other lines are logs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest metric name, in bytes; `class_acc/<class>` names stay far below it.
pub const MAX_METRIC_NAME: usize = 256;

/// Whether `name` can be a metric's name: 1 to [`MAX_METRIC_NAME`] bytes, nothing that drives a
/// terminal or reorders text (`text::is_hidden`). The coordinator refuses a report with any other,
/// so the agent drops such a record when it reads it.
pub fn is_valid_metric_name(name: &str) -> bool {
    (1..=MAX_METRIC_NAME).contains(&name.len()) && !name.chars().any(crate::text::is_hidden)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u32,
    /// Optimizer steps so far; the epoch number when the program does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct LooseRecord {
    epoch: u32,
    #[serde(default)]
    step: Option<i64>,
    metrics: serde_json::Map<String, serde_json::Value>,
}

/// A metric of a record line that could not be recorded (a string where a number belongs, a name
/// the coordinator refuses); the line's other metrics are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMetric {
    /// The name as written, escaped (`text::escape`) and cut to [`SHOWN_CHARS`] characters.
    pub name: String,
    pub reason: String,
}

/// How much of a name or value a skipped metric's reason quotes.
pub const SHOWN_CHARS: usize = 64;

fn shown(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    let ellipsis = if cut.len() < text.len() { "…" } else { "" };
    format!("{}{ellipsis}", crate::text::escape(&cut))
}

impl EpochRecord {
    /// The step to record: the reported one, else the epoch.
    pub fn step_or_epoch(&self) -> i64 {
        self.step.unwrap_or(self.epoch as i64)
    }

    /// One line of the protocol, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record of numbers serializes")
    }

    /// `None` for a line that is not a record (a log line); `Some(Err)` for a line that looks like a
    /// record but is malformed, so the agent can say which line was dropped. Metrics that cannot
    /// be recorded are left out: see [`EpochRecord::parse_line_keeping`].
    pub fn parse_line(line: &str) -> Option<Result<EpochRecord, String>> {
        Some(Self::parse_line_keeping(line)?.map(|(record, _)| record))
    }

    /// [`EpochRecord::parse_line`], also saying which metrics were left out and why: one value that
    /// is not a number (`"note": "hi"`) or a name the coordinator would refuse costs that metric
    /// only, not the epoch's other values.
    pub fn parse_line_keeping(line: &str) -> Option<Result<(EpochRecord, Vec<SkippedMetric>), String>> {
        let trimmed = line.trim();
        if !trimmed.starts_with('{') {
            return None;
        }
        let loose: LooseRecord = match serde_json::from_str(trimmed) {
            Ok(r) => r,
            Err(first) => {
                let quoted =
                    trimmed.replace("-Infinity", "\"-inf\"").replace("Infinity", "\"inf\"").replace("NaN", "\"nan\"");
                match serde_json::from_str(&quoted) {
                    Ok(r) => r,
                    Err(_) => return Some(Err(format!("not a metric record: {first}"))),
                }
            }
        };
        let mut metrics = BTreeMap::new();
        let mut skipped = Vec::new();
        for (name, value) in loose.metrics {
            if !is_valid_metric_name(&name) {
                skipped.push(SkippedMetric {
                    name: shown(&name),
                    reason: format!(
                        "expected a name of 1 to {MAX_METRIC_NAME} bytes without control or bidirectional \
                         formatting characters"
                    ),
                });
                continue;
            }
            match number(&value) {
                Some(v) => {
                    metrics.insert(name, v);
                }
                None => {
                    let got = match &value {
                        serde_json::Value::String(t) => format!("\"{}\"", shown(t)),
                        other => shown(&other.to_string()),
                    };
                    skipped.push(SkippedMetric { name: shown(&name), reason: format!("expected a number, got {got}") });
                }
            }
        }
        skipped.sort_by(|a, b| a.name.cmp(&b.name));
        Some(Ok((EpochRecord { epoch: loose.epoch, step: loose.step, metrics }, skipped)))
    }
}

/// A metric's value: a number; `null` (how serde_json, and so `to_line`, writes a non-finite
/// number) as NaN; and Python's bare `NaN`/`Infinity`, which `json.dumps` writes for a diverged
/// loss and the parser has quoted by then.
fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::Null => Some(f64::NAN),
        serde_json::Value::String(t) => match t.to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A line of a fused group's output (several trials in one process), tagged with the trial it is
/// about: `{"trial": "…", "epoch": 3, "step": …, "metrics": {…}}`, or
/// `{"trial": "…", "dropped": "why"}` once a member left the group.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberLine {
    Epoch(EpochRecord),
    Dropped(String),
}

#[derive(Deserialize)]
struct Tag {
    trial: String,
    #[serde(default)]
    dropped: Option<String>,
}

impl MemberLine {
    /// The line for member `trial`, without the newline.
    pub fn to_line(&self, trial: &str) -> String {
        let mut value = match self {
            MemberLine::Epoch(record) => serde_json::to_value(record).expect("a record of numbers serializes"),
            MemberLine::Dropped(why) => serde_json::json!({ "dropped": why }),
        };
        value.as_object_mut().expect("an object").insert("trial".into(), trial.into());
        value.to_string()
    }

    /// `None` for a line without a trial tag (a log line, or an untagged record); `Some(Err)` for
    /// a tagged line that is malformed.
    pub fn parse(line: &str) -> Option<Result<(String, MemberLine), String>> {
        let trimmed = line.trim();
        if !trimmed.starts_with('{') {
            return None;
        }
        let tag: Tag = serde_json::from_str(trimmed).ok()?;
        Some(match tag.dropped {
            Some(why) => Ok((tag.trial, MemberLine::Dropped(why))),
            None => match EpochRecord::parse_line(trimmed)? {
                Ok(record) => Ok((tag.trial, MemberLine::Epoch(record))),
                Err(e) => Err(format!("trial {}: {e}", tag.trial)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_skips_logs() {
        assert!(EpochRecord::parse_line("epoch 3 done").is_none());
        let r = EpochRecord::parse_line(r#"{"epoch": 3, "metrics": {"loss": 0.41, "acc": 0.88}}"#).unwrap().unwrap();
        assert_eq!(r.epoch, 3);
        assert_eq!(r.step_or_epoch(), 3);
        assert_eq!(r.metrics["acc"], 0.88);
    }

    #[test]
    fn keeps_python_nan_and_infinity() {
        let r = EpochRecord::parse_line(r#"{"epoch": 1, "step": 7, "metrics": {"loss": NaN, "g": -Infinity}}"#)
            .unwrap()
            .unwrap();
        assert!(r.metrics["loss"].is_nan());
        assert_eq!(r.metrics["g"], f64::NEG_INFINITY);
        assert_eq!(r.step_or_epoch(), 7);
    }

    #[test]
    fn a_nan_written_by_to_line_reads_back_as_nan() {
        let r = EpochRecord { epoch: 1, step: None, metrics: [("loss".to_string(), f64::NAN)].into() };
        assert!(EpochRecord::parse_line(&r.to_line()).unwrap().unwrap().metrics["loss"].is_nan());
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(EpochRecord::parse_line(r#"{"epoch": "x"}"#).unwrap().is_err());
        assert!(EpochRecord::parse_line(r#"{"epoch": 1, "loss": 0.5}"#).unwrap().is_err(), "no `metrics` object");
    }

    /// One value that is not a number costs that metric only: the epoch's numbers are kept, and
    /// the caller learns which name was left out and why, quoted escaped and bounded.
    #[test]
    fn a_value_that_is_not_a_number_is_skipped_and_the_rest_kept() {
        let line =
            r#"{"epoch": 1, "metrics": {"loss": 0.5, "note": "hi", "flag": true, "acc": NaN, "cfg": {"a": [1]}}}"#;
        let (r, skipped) = EpochRecord::parse_line_keeping(line).unwrap().unwrap();
        assert_eq!(r.metrics.keys().collect::<Vec<_>>(), ["acc", "loss"]);
        assert!(r.metrics["acc"].is_nan() && r.metrics["loss"] == 0.5);
        let reasons: Vec<_> = skipped.iter().map(|s| format!("{}: {}", s.name, s.reason)).collect();
        assert_eq!(
            reasons,
            [
                r#"cfg: expected a number, got {"a":[1]}"#,
                "flag: expected a number, got true",
                r#"note: expected a number, got "hi""#
            ]
        );
        assert_eq!(EpochRecord::parse_line(line).unwrap().unwrap().metrics.len(), 2);
        let long = format!(r#"{{"epoch": 1, "metrics": {{"note": "{}\\u001b[2J"}}}}"#, "x".repeat(10_000));
        let (_, skipped) = EpochRecord::parse_line_keeping(&long).unwrap().unwrap();
        assert!(
            skipped[0].reason.len() < 2 * SHOWN_CHARS && skipped[0].reason.ends_with("…\""),
            "{}",
            skipped[0].reason
        );
    }

    #[test]
    fn names_the_coordinator_refuses_are_skipped_escaped_and_the_rest_kept() {
        for name in ["", "acc\\u001b[2J", "a\\u001b]0;title\\u0007", "x\\u202egpj", "line\\nbreak"] {
            let line = format!(r#"{{"epoch": 1, "metrics": {{"ok": 1.0, "{name}": 0.5}}}}"#);
            let (r, skipped) = EpochRecord::parse_line_keeping(&line).unwrap().unwrap();
            assert_eq!(r.metrics.keys().collect::<Vec<_>>(), ["ok"]);
            let shown = &skipped[0].name;
            assert!(!shown.contains('\x1b') && !shown.contains('\u{202e}') && !shown.contains('\n'), "{shown}");
            assert!(skipped[0].reason.starts_with("expected a name of 1 to"), "{}", skipped[0].reason);
        }
        let long = "m".repeat(MAX_METRIC_NAME + 1);
        let line = format!(r#"{{"epoch": 1, "metrics": {{"{long}": 0.5}}}}"#);
        let (r, skipped) = EpochRecord::parse_line_keeping(&line).unwrap().unwrap();
        assert!(r.metrics.is_empty() && skipped[0].name.chars().count() == SHOWN_CHARS + 1);
        let longest = "m".repeat(MAX_METRIC_NAME);
        let line = format!(r#"{{"epoch": 1, "metrics": {{"{longest}": 0.5, "class_acc/3": 1}}}}"#);
        assert_eq!(EpochRecord::parse_line(&line).unwrap().unwrap().metrics.len(), 2);
    }

    #[test]
    fn member_lines_carry_the_trial() {
        let r = EpochRecord { epoch: 2, step: Some(10), metrics: [("train_loss".to_string(), f64::NAN)].into() };
        let epoch = MemberLine::Epoch(r.clone());
        let (trial, back) = MemberLine::parse(&epoch.to_line("00000000000000ab")).unwrap().unwrap();
        assert_eq!(trial, "00000000000000ab");
        let MemberLine::Epoch(back) = back else { panic!("{back:?}") };
        assert!(back.metrics["train_loss"].is_nan() && back.epoch == 2);
        let dropped = MemberLine::Dropped("diverged".into());
        assert_eq!(MemberLine::parse(&dropped.to_line("cd")).unwrap().unwrap(), ("cd".to_string(), dropped));
        assert!(MemberLine::parse(&r.to_line()).is_none(), "an untagged record is no member line");
        assert!(MemberLine::parse("loading data").is_none());
        assert!(MemberLine::parse(r#"{"trial": "x", "epoch": "one", "metrics": {}}"#).unwrap().is_err());
    }

    #[test]
    fn round_trips() {
        let r = EpochRecord { epoch: 2, step: Some(10), metrics: [("train_loss".to_string(), 0.5)].into() };
        assert_eq!(EpochRecord::parse_line(&r.to_line()).unwrap().unwrap(), r);
    }
}
