//! The parameters of `double_descent`, parsed from a trial's resolved table and checked, with
//! messages that name the key. Defaults live in `sweep_spec::workloads::DOUBLE_DESCENT` only.

use crate::error::TrialError;
use crate::models::Arch;
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::params::{at_least, in_range};
use serde_json::{Map, Value};
use sweep_spec::workloads::DOUBLE_DESCENT;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    Net(Arch),
    /// A fixed random ReLU layer and a closed-form output layer.
    RandomFeatures,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub model: Model,
    pub width: i64,
    pub label_noise: f64,
    pub weight_decay: f64,
    pub dropout: f64,
    pub augment: bool,
    pub epochs: u32,
    pub batch_size: i64,
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    /// 0: the whole training split.
    pub n_train: usize,
    pub eval_every: u32,
    /// `auto`, `fp32` or `bf16`; resolved against the device when training starts.
    pub precision: String,
    pub seed: u64,
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &DOUBLE_DESCENT)?;
        // The catalogue check guarantees presence and JSON types; what is left are ranges.
        let int = |k: &str| params[k].as_i64().expect("checked integer");
        let num = |k: &str| params[k].as_f64().expect("checked number");
        let model = match params["model"].as_str().expect("checked string") {
            "random_features" => Model::RandomFeatures,
            other => Model::Net(other.parse::<Arch>().map_err(|e| {
                TrialError::bad_config(format!("params.model: {e} or \"random_features\"").replace("arch: ", ""))
            })?),
        };
        let label_noise = num("label_noise");
        let weight_decay = num("weight_decay");
        let dropout = num("dropout");
        let epochs = at_least("epochs", int("epochs"), 1)? as u32;
        let optimizer_table = params["optimizer"].as_object().expect("checked table");
        Ok(Params {
            model,
            width: at_least("width", int("width"), 1)? as i64,
            label_noise: in_range(
                "label_noise",
                label_noise,
                (0.0..1.0).contains(&label_noise),
                "a fraction in [0, 1)",
            )?,
            weight_decay: in_range("weight_decay", weight_decay, weight_decay >= 0.0, "a number >= 0")?,
            dropout: in_range("dropout", dropout, (0.0..1.0).contains(&dropout), "a probability in [0, 1)")?,
            augment: params["augment"].as_bool().expect("checked bool"),
            epochs,
            batch_size: at_least("batch_size", int("batch_size"), 1)? as i64,
            optimizer: OptimizerConfig::from_params(optimizer_table, weight_decay).map_err(TrialError::bad_config)?,
            schedule: LrSchedule::from_params(Some(&params["schedule"]), epochs).map_err(TrialError::bad_config)?,
            n_train: at_least("n_train", int("n_train"), 0)?,
            eval_every: at_least("eval_every", int("eval_every"), 1)? as u32,
            precision: {
                let value = params["precision"].as_str().expect("checked string");
                crate::harness::Precision::parse(value, tch::Device::Cpu).map_err(TrialError::bad_config)?;
                value.to_string()
            },
            seed: at_least("seed", int("seed"), 0)? as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped study of this workload must parse, trial by trial, before it reaches a cluster.
    #[test]
    fn every_shipped_study_parses() {
        let studies = crate::params::shipped_studies(&DOUBLE_DESCENT);
        for (path, trials) in &studies {
            for trial in trials {
                Params::parse(&trial.params).unwrap_or_else(|e| panic!("{}: trial {}: {e}", path.display(), trial.id));
            }
        }
        assert!(studies.len() >= 3, "expected the small, CIFAR-10 and ImageNet studies");
    }
}
