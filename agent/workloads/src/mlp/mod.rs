//! The `mlp` workload: its typed, validated parameters and the choice between the two ways of
//! fitting it (a trained MLP, or random features with a closed-form output layer).
//! Defaults live in `sweep_spec::workloads::MLP` only; a trial arrives with every parameter set.

mod data;
mod random_features;
mod trained;

use crate::error::TrialError;
use crate::params::{at_least, in_range};
use crate::Sink;
use serde::Deserialize;
use serde_json::{Map, Value};
use sweep_spec::workloads::MLP;
use tch::Device;

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
    optimizer: RawOptimizer,
    weight_decay: f64,
    seed: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptimizer {
    name: String,
    lr: f64,
    /// SGD only; absent means plain SGD (momentum 0), as in PyTorch.
    #[serde(default)]
    momentum: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    Adam { lr: f64 },
    Sgd { lr: f64, momentum: f64 },
}

impl Optimizer {
    pub fn lr(self) -> f64 {
        match self {
            Optimizer::Adam { lr } | Optimizer::Sgd { lr, .. } => lr,
        }
    }
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
    pub optimizer: Optimizer,
    /// L2 penalty for the trained MLP; the ridge coefficient for random features.
    pub weight_decay: f64,
    pub seed: u64,
}

/// Runs one `mlp` trial on `device`, handing one record per epoch to `sink`.
pub fn run(
    params: &Map<String, Value>,
    device: Device,
    sink: &mut Sink<'_>,
) -> Result<(), TrialError> {
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
        if p.hidden_trainable {
            "trained"
        } else {
            "random features"
        }
    );
    if p.hidden_trainable {
        trained::train(&p, &data, device, sink)
    } else {
        random_features::fit(&p, &data, device, sink)
    }
}

impl MlpParams {
    pub fn parse(params: &Map<String, Value>) -> Result<MlpParams, TrialError> {
        crate::params::check(params, &MLP)?;
        // Every top-level type is checked above, so what serde can still refuse is the optimizer table.
        serde_json::from_value::<RawOptimizer>(params["optimizer"].clone())
            .map_err(|e| TrialError::bad_config(format!("params.optimizer: {e}")))?;
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
        let o = &self.optimizer;
        let lr = in_range("optimizer.lr", o.lr, o.lr > 0.0, "a number > 0")?;
        let optimizer = match (o.name.as_str(), o.momentum) {
            ("adam", None) => Optimizer::Adam { lr },
            ("adam", Some(_)) => {
                return Err(TrialError::bad_config(
                    "params.optimizer.momentum: applies to name = \"sgd\" only; Adam's moments are fixed",
                ))
            }
            ("sgd", momentum) => {
                let m = momentum.unwrap_or(0.0);
                let momentum = in_range("optimizer.momentum", m, (0.0..1.0).contains(&m), "a number in [0, 1)")?;
                Optimizer::Sgd { lr, momentum }
            }
            (other, _) => {
                return Err(TrialError::bad_config(format!(
                    "params.optimizer.name: expected \"adam\" or \"sgd\", got \"{other}\""
                )))
            }
        };
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
            weight_decay: in_range(
                "weight_decay",
                self.weight_decay,
                self.weight_decay >= 0.0,
                "a number >= 0",
            )?,
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
        let mut m = Map::new();
        for p in MLP.params {
            m.insert(p.name.to_string(), (p.default)());
        }
        for (k, v) in [
            ("n", json!(64)),
            ("n_test", json!(64)),
            ("dim", json!(8)),
            ("width", json!(16)),
            ("epochs", json!(2)),
        ] {
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
        assert_eq!(p.optimizer, Optimizer::Adam { lr: 1e-3 });
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
        m.insert(
            "optimizer".into(),
            json!({"name": "sgd", "lr": 0.1, "momentum": 1.0}),
        );
        assert!(message(&m).starts_with("params.optimizer.momentum:"));

        let mut m = params_map();
        m.insert("optimizer".into(), json!({"name": "sgd"}));
        assert!(
            message(&m).starts_with("params.optimizer: missing field `lr`"),
            "{}",
            message(&m)
        );

        let mut m = params_map();
        m.insert("weight_decay".into(), json!(-0.5));
        assert!(message(&m).starts_with("params.weight_decay:"));
    }

    #[test]
    fn sgd_momentum_defaults_to_zero() {
        let mut m = params_map();
        m.insert("optimizer".into(), json!({"name": "sgd", "lr": 0.1}));
        assert_eq!(
            MlpParams::parse(&m).unwrap().optimizer,
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.0
            }
        );
    }
}
