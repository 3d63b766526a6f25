//! A trial: one fully resolved configuration of a sweep, named by a hash of its content.

use crate::file::{DataRef, Resources};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Content address of a trial: the first 16 hex digits of SHA-256 over the canonical JSON of
/// (workload, command, resolved parameters, data). The seed is one of the parameters. Submitting the
/// same trial twice therefore names the same row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialId(pub String);

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything an agent needs to run one trial. Serialized as JSON on the wire and in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialSpec {
    pub id: TrialId,
    pub sweep: String,
    /// Position in the expansion order, for stable listings.
    pub index: u32,
    pub workload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Fully resolved: workload defaults, then `[params]`, then the grid point and random sample.
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRef>,
    pub resources: Resources,
    /// Checkpoint cadence from `[retry]`, handed to the trial process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_epochs: Option<u32>,
    /// How a `command` trial gets its boolean parameters (`command_bool` in the sweep file). Not
    /// part of the trial id: it changes how the values are passed, not the values.
    #[serde(default, skip_serializing_if = "CommandBool::is_value")]
    pub command_bool: CommandBool,
    /// A trial a PBT schedule made starts from another trial's checkpoint (see [`CopyFrom`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<CopyFrom>,
}

/// The checkpoint a trial made by PBT starts from: the one trial `trial_id` kept at `epoch`. Its
/// agent copies it into the trial's own checkpoint folder before the trial first starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyFrom {
    pub trial_id: String,
    pub epoch: u32,
}

/// How a `command` trial receives a boolean parameter `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandBool {
    /// `--name true` / `--name false`, like every other parameter.
    #[default]
    Value,
    /// `--name` when true and nothing when false, as argparse's `store_true` expects.
    Flag,
}

impl CommandBool {
    pub const NAMES: [&'static str; 2] = ["value", "flag"];

    pub fn is_value(&self) -> bool {
        *self == CommandBool::Value
    }

    pub fn parse(text: &str) -> Option<CommandBool> {
        match text {
            "value" => Some(CommandBool::Value),
            "flag" => Some(CommandBool::Flag),
            _ => None,
        }
    }

    /// The arguments that pass parameter `name` = `value` to a `command` trial.
    pub fn args(self, name: &str, value: &Value) -> Vec<String> {
        match (self, value) {
            (CommandBool::Flag, Value::Bool(true)) => vec![format!("--{name}")],
            (CommandBool::Flag, Value::Bool(false)) => Vec::new(),
            _ => vec![format!("--{name}"), TrialSpec::param_as_arg(value)],
        }
    }
}

impl TrialSpec {
    pub fn content_id(
        workload: &str,
        command: Option<&[String]>,
        params: &Map<String, Value>,
        data: Option<&DataRef>,
    ) -> TrialId {
        // serde_json's Map keeps keys sorted (no preserve_order here), so this JSON is canonical.
        let canonical = serde_json::json!({
            "workload": workload,
            "command": command,
            "params": params,
            "data": data,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        TrialId(hex)
    }

    /// The id of a trial PBT makes in place of `replacing`, judged at the epoch this trial's
    /// `copy_from` names: unique, since a trial is replaced once, and the same however often the
    /// decision is made again from the same facts.
    pub fn copy_id(&self, replacing: &TrialId) -> TrialId {
        let canonical = serde_json::json!({
            "content": TrialSpec::content_id(&self.workload, self.command.as_deref(), &self.params, self.data.as_ref()).0,
            "copy_from": self.copy_from,
            "replacing": replacing.0,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        TrialId(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// A parameter rendered for `--name value` arguments and `SWEEP_PARAM_*` variables: strings bare,
    /// everything else as JSON.
    pub fn param_as_arg(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Exit status of a trial process whose configuration is invalid (sysexits' EX_CONFIG). The
/// coordinator fails such a trial at once instead of retrying it.
pub const EXIT_BAD_CONFIG: i32 = 78;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_depends_on_content_not_key_order() {
        let mut a = Map::new();
        a.insert("width".into(), Value::from(4));
        a.insert("seed".into(), Value::from(1));
        let mut b = Map::new();
        b.insert("seed".into(), Value::from(1));
        b.insert("width".into(), Value::from(4));
        assert_eq!(TrialSpec::content_id("mlp", None, &a, None), TrialSpec::content_id("mlp", None, &b, None));
        b.insert("seed".into(), Value::from(2));
        assert_ne!(TrialSpec::content_id("mlp", None, &a, None), TrialSpec::content_id("mlp", None, &b, None));
        assert_eq!(TrialSpec::content_id("mlp", None, &a, None).0.len(), 16);
    }
}
