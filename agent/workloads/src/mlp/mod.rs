//! The `mlp` workload: its typed, validated parameters and the choice between the two ways of
//! fitting it (a trained MLP, or random features with a closed-form output layer).
//! Defaults live in `sweep_spec::workloads::MLP` only; a trial arrives with every parameter set.

mod data;
mod random_features;
mod trained;

use crate::error::TrialError;
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::params::{at_least, in_range};
use crate::{Sink, TrialContext};
use serde::Deserialize;
use serde_json::{Map, Value};
use sweep_spec::workloads::MLP;

/// The parameters exactly as the trial carries them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    width: i64,
    depth: i64,
    hidden_trainable: bool,
    n: i64,
    n_test: i64,
    dim: i64,
    classes: i64,
    label_noise: f64,
    epochs: i64,
    batch_size: i64,
    optimizer: Map<String, Value>,
    weight_decay: f64,
    seed: i64,
}

/// Validated parameters, in the types the code uses.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpParams {
    pub width: usize,
    /// Hidden layers. Random features (`hidden_trainable = false`) require exactly 1: the fixed
    /// layer is the whole model, and a silently ignored depth would mislabel the results.
    pub depth: usize,
    pub hidden_trainable: bool,
    pub data: data::DataParams,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    /// L2 penalty for the trained MLP; the ridge coefficient for random features.
    pub weight_decay: f64,
    pub seed: u64,
}

/// Runs one `mlp` trial on `device`, handing one record per epoch to `sink`.
pub fn run(params: &Map<String, Value>, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = MlpParams::parse(params)?;
    let data = data::Dataset::generate(&p.data, p.seed);
    eprintln!(
        "mlp: n={} n_test={} dim={} classes={} noisy_labels={} width={} depth={} {}",
        p.data.n,
        p.data.n_test,
        p.data.dim,
        p.data.classes,
        data.noisy.len(),
        p.width,
        p.depth,
        if p.hidden_trainable { "trained" } else { "random features" }
    );
    if p.hidden_trainable {
        trained::train(&p, &data, ctx, sink)
    } else {
        random_features::fit(&p, &data, ctx.device, sink)
    }
}

impl MlpParams {
    pub fn parse(params: &Map<String, Value>) -> Result<MlpParams, TrialError> {
        crate::params::check(params, &MLP)?;
        let raw: RawParams = serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| TrialError::bad_config(format!("params: {e}")))?;
        raw.validate()
    }
}

impl RawParams {
    fn validate(self) -> Result<MlpParams, TrialError> {
        let depth = at_least("depth", self.depth, 1)?;
        if !self.hidden_trainable && depth != 1 {
            return Err(TrialError::bad_config(format!(
                "params.depth: expected 1 when hidden_trainable = false (random features have one fixed hidden layer), got {depth}"
            )));
        }
        let weight_decay = in_range("weight_decay", self.weight_decay, self.weight_decay >= 0.0, "a number >= 0")?;
        let optimizer = OptimizerConfig::from_params(&self.optimizer, weight_decay).map_err(TrialError::bad_config)?;
        if optimizer.name == OptimizerKind::AdamW {
            return Err(TrialError::bad_config(
                "params.optimizer.name: expected \"adam\" or \"sgd\" for workload `mlp`, got \"adamw\"",
            ));
        }
        let label_noise = self.label_noise;
        Ok(MlpParams {
            width: at_least("width", self.width, 1)?,
            depth,
            hidden_trainable: self.hidden_trainable,
            data: data::DataParams {
                n: at_least("n", self.n, 1)?,
                n_test: at_least("n_test", self.n_test, 1)?,
                dim: at_least("dim", self.dim, 1)?,
                classes: at_least("classes", self.classes, 2)?,
                label_noise: in_range(
                    "label_noise",
                    label_noise,
                    (0.0..=1.0).contains(&label_noise),
                    "a number in [0, 1]",
                )?,
            },
            epochs: at_least("epochs", self.epochs, 1)?,
            batch_size: at_least("batch_size", self.batch_size, 1)?,
            optimizer,
            weight_decay,
            seed: at_least("seed", self.seed, 0)? as u64,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small valid `mlp` configuration with every parameter set, as a resolved trial carries it.
    pub(crate) fn params_map() -> Map<String, Value> {
        let mut m = MLP.defaults();
        for (k, v) in
            [("n", json!(64)), ("n_test", json!(64)), ("dim", json!(8)), ("width", json!(16)), ("epochs", json!(2))]
        {
            m.insert(k.into(), v);
        }
        m
    }

    fn message(params: &Map<String, Value>) -> String {
        match MlpParams::parse(params) {
            Err(TrialError::BadConfig(m)) => m,
            other => panic!("expected a bad configuration, got {other:?}"),
        }
    }

    #[test]
    fn catalogue_defaults_parse() {
        let p = MlpParams::parse(&params_map()).unwrap();
        assert_eq!((p.optimizer.name, p.optimizer.lr), (OptimizerKind::Adam, 1e-3));
        assert_eq!(p.depth, 1);
    }

    #[test]
    fn messages_name_the_parameter() {
        let mut m = params_map();
        m.insert("width".into(), json!(0));
        assert_eq!(message(&m), "params.width: expected an integer >= 1, got 0");

        let mut m = params_map();
        m.insert("hidden_trainable".into(), json!(false));
        m.insert("depth".into(), json!(2));
        assert!(message(&m).starts_with("params.depth:"));

        let mut m = params_map();
        m.insert("optimizer".into(), json!({"name": "sgd", "lr": 0.1, "momentum": 1.0}));
        assert!(message(&m).starts_with("params.optimizer.momentum:"));

        let mut m = params_map();
        m.insert("optimizer".into(), json!({"name": "sgd"}));
        assert!(message(&m).starts_with("params.optimizer.lr:"), "{}", message(&m));

        let mut m = params_map();
        m.insert("weight_decay".into(), json!(-0.5));
        assert!(message(&m).starts_with("params.weight_decay:"));
    }

    #[test]
    fn sgd_momentum_defaults_to_zero() {
        let mut m = params_map();
        m.insert("optimizer".into(), json!({"name": "sgd", "lr": 0.1}));
        let o = MlpParams::parse(&m).unwrap().optimizer;
        assert_eq!((o.name, o.lr, o.momentum), (OptimizerKind::Sgd, 0.1, 0.0));
    }
}
