//! The one conversion between the wire's `Trial` and the domain's `TrialSpec`, shared by the
//! coordinator (which also checks the content id) and the agent.

use crate::v1::Trial;
use serde_json::Value;
use sweep_spec::{CommandBool, CopyFrom, Fuse, Resources, TrialId, TrialSpec};

impl From<&TrialSpec> for Trial {
    fn from(t: &TrialSpec) -> Trial {
        Trial {
            trial_id: t.id.0.clone(),
            index: t.index,
            workload: t.workload.clone(),
            command: t.command.clone().unwrap_or_default(),
            params_json: Value::Object(t.params.clone()).to_string(),
            data_json: t.data.as_ref().map(|d| serde_json::to_string(d).expect("data serializes")).unwrap_or_default(),
            gpus: t.resources.gpus,
            checkpoint_every_epochs: t.checkpoint_every_epochs.unwrap_or(0),
            fuse: match t.resources.fuse {
                Fuse::Off => String::new(),
                Fuse::UpTo(n) => n.to_string(),
                Fuse::Auto => "auto".into(),
            },
            gpu_share: t.resources.gpu_share.unwrap_or(0.0),
            cuda_graphs_off: !t.resources.cuda_graphs,
            command_bool_flag: t.command_bool == CommandBool::Flag,
            copy_from_trial_id: t.copy_from.as_ref().map(|c| c.trial_id.clone()).unwrap_or_default(),
            copy_from_epoch: t.copy_from.as_ref().map_or(0, |c| c.epoch),
        }
    }
}

impl Trial {
    /// The domain trial of sweep `sweep`; the error names the malformed field.
    pub fn into_spec(self, sweep: &str) -> Result<TrialSpec, String> {
        let params = match serde_json::from_str(&self.params_json) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("trial {}: params_json: expected a JSON object", self.trial_id)),
        };
        let data = if self.data_json.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&self.data_json)
                    .map_err(|e| format!("trial {}: data_json: {e}", self.trial_id))?,
            )
        };
        let fuse = match self.fuse.as_str() {
            "" => Fuse::Off,
            "auto" => Fuse::Auto,
            n => Fuse::UpTo(
                n.parse()
                    .map_err(|_| format!("trial {}: fuse: expected \"auto\" or a number, got {n:?}", self.trial_id))?,
            ),
        };
        Ok(TrialSpec {
            id: TrialId(self.trial_id),
            sweep: sweep.to_string(),
            index: self.index,
            workload: self.workload,
            command: (!self.command.is_empty()).then_some(self.command),
            params,
            data,
            resources: Resources {
                gpus: self.gpus,
                fuse,
                gpu_share: (self.gpu_share > 0.0 && self.gpu_share < 1.0).then_some(self.gpu_share),
                cuda_graphs: !self.cuda_graphs_off,
            },
            checkpoint_every_epochs: (self.checkpoint_every_epochs > 0).then_some(self.checkpoint_every_epochs),
            command_bool: if self.command_bool_flag { CommandBool::Flag } else { CommandBool::Value },
            copy_from: (!self.copy_from_trial_id.is_empty())
                .then_some(CopyFrom { trial_id: self.copy_from_trial_id, epoch: self.copy_from_epoch }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Floats drawn by `[random]` have 17 significant digits; read back from the wire they must
    /// be the same floats, or the coordinator computes another id and refuses the trial.
    #[test]
    fn drawn_floats_keep_their_trial_ids_across_the_wire() {
        let text = "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[random]\nsamples = 500\nseed = 3\n\
                    lr = { log_uniform = [1e-5, 1e-1] }\nx = { uniform = [0, 1] }\n";
        let file = sweep_spec::SweepFile::parse(text, Path::new("s.toml"), Path::new(".")).unwrap();
        for spec in sweep_spec::expand(&file).unwrap() {
            let back = Trial::from(&spec).into_spec("s").unwrap();
            let id = TrialSpec::content_id(&back.workload, back.command.as_deref(), &back.params, back.data.as_ref());
            assert_eq!(id, spec.id, "{:?}", spec.params);
        }
    }
}
