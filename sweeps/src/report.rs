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
    metrics: BTreeMap<String, LooseNumber>,
}

/// Python's `json.dumps` writes `NaN` and `Infinity` bare; a diverged loss must still be recorded.
#[derive(Deserialize)]
#[serde(untagged)]
enum LooseNumber {
    Number(f64),
    Text(String),
    /// serde_json (and so `to_line`) writes a non-finite number as `null`.
    Null(()),
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
    /// record but is malformed, so the agent can say which line was dropped.
    pub fn parse_line(line: &str) -> Option<Result<EpochRecord, String>> {
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
        for (name, value) in loose.metrics {
            if !is_valid_metric_name(&name) {
                let shown = crate::text::escape(&name.chars().take(64).collect::<String>()).into_owned();
                return Some(Err(format!(
                    "metric name \"{shown}\": expected 1 to {MAX_METRIC_NAME} bytes without control or \
                     bidirectional formatting characters"
                )));
            }
            let v = match value {
                LooseNumber::Number(v) => v,
                LooseNumber::Null(()) => f64::NAN,
                LooseNumber::Text(t) => match t.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "inf" | "infinity" => f64::INFINITY,
                    "-inf" | "-infinity" => f64::NEG_INFINITY,
                    _ => return Some(Err(format!("metric `{name}`: expected a number, got \"{t}\""))),
                },
            };
            metrics.insert(name, v);
        }
        Some(Ok(EpochRecord { epoch: loose.epoch, step: loose.step, metrics }))
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
        assert!(EpochRecord::parse_line(r#"{"epoch": 1, "metrics": {"a": "high"}}"#).unwrap().is_err());
    }

    #[test]
    fn records_with_names_the_coordinator_refuses_are_errors_that_escape_the_name() {
        for name in ["", "acc\\u001b[2J", "a\\u001b]0;title\\u0007", "x\\u202egpj", "line\\nbreak"] {
            let line = format!(r#"{{"epoch": 1, "metrics": {{"ok": 1.0, "{name}": 0.5}}}}"#);
            let err = EpochRecord::parse_line(&line).unwrap().unwrap_err();
            assert!(err.starts_with("metric name \""), "{err}");
            assert!(!err.contains('\x1b') && !err.contains('\u{202e}') && !err.contains('\n'), "{err}");
        }
        let long = "m".repeat(MAX_METRIC_NAME + 1);
        let line = format!(r#"{{"epoch": 1, "metrics": {{"{long}": 0.5}}}}"#);
        assert!(EpochRecord::parse_line(&line).unwrap().is_err());
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
