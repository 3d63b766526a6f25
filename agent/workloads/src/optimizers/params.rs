//! The parameters of `optimizers`, typed and checked. Defaults live in
//! `sweep_spec::workloads::OPTIMIZERS` only; a trial arrives with every parameter set.

use crate::error::TrialError;
use crate::optim::OptimizerConfig;
use serde::Deserialize;
use serde_json::{Map, Value};
use sweep_spec::workloads::OPTIMIZERS;

/// The parameters exactly as the trial carries them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    problem: String,
    optimizer: Map<String, Value>,
    weight_decay: f64,
    batch_size: i64,
    steps: i64,
    record_every: i64,
    target_loss: f64,
    condition_number: f64,
    dim: i64,
    outputs: i64,
    width: i64,
    depth: i64,
    points: i64,
    n_train: i64,
    seed: i64,
}

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Problem {
    /// Linear least squares on `points` synthetic inputs whose covariance has eigenvalues spread
    /// log-uniformly over [1/condition_number, 1], in a random rotation; `outputs` targets.
    LeastSquares { points: i64, dim: i64, outputs: i64, condition_number: f64 },
    /// Multinomial logistic regression on the images.
    Logistic,
    /// A ReLU network of `depth` hidden layers of `width` units on the images.
    Mlp { width: usize, depth: usize },
    /// The 5-layer CNN of `models/` with k = `width` on the images.
    Cnn5 { width: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub problem: Problem,
    pub optimizer: OptimizerConfig,
    /// 0: every training point in each step (full-batch).
    pub batch_size: usize,
    pub steps: u32,
    pub record_every: u32,
    pub target_loss: f64,
    /// Image problems: the first n_train images (0: all).
    pub n_train: usize,
    pub seed: u64,
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &OPTIMIZERS)?;
        let raw: RawParams = serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| TrialError::bad_config(format!("params: {e}")))?;
        // The catalogue has checked every name and bound; what is left is the typing.
        let problem = match raw.problem.as_str() {
            "logistic" => Problem::Logistic,
            "mlp" => Problem::Mlp { width: raw.width.max(1) as usize, depth: raw.depth.max(1) as usize },
            "cnn5" => Problem::Cnn5 { width: raw.width.max(1) },
            _ => Problem::LeastSquares {
                points: raw.points.max(1),
                dim: raw.dim.max(1),
                outputs: raw.outputs.max(1),
                condition_number: raw.condition_number,
            },
        };
        let optimizer =
            OptimizerConfig::from_params(&raw.optimizer, raw.weight_decay).map_err(TrialError::bad_config)?;
        Ok(Params {
            problem,
            optimizer,
            batch_size: raw.batch_size.max(0) as usize,
            steps: crate::params::fits_u32("steps", raw.steps)?,
            record_every: crate::params::fits_u32("record_every", raw.record_every)?,
            target_loss: raw.target_loss,
            n_train: raw.n_train.max(0) as usize,
            seed: raw.seed.max(0) as u64,
        })
    }

    /// Whether step `done` (steps taken) gets a record: every `record_every`, and the last.
    pub fn records_at(&self, done: u32) -> bool {
        done.is_multiple_of(self.record_every.max(1)) || done == self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimizerKind;
    use serde_json::json;

    #[test]
    fn defaults_parse_and_name_the_problem() {
        let p = Params::parse(&OPTIMIZERS.defaults()).unwrap();
        assert!(matches!(p.problem, Problem::LeastSquares { .. }));
        assert_eq!(p.optimizer.name, OptimizerKind::Sgd);
        let mut params = OPTIMIZERS.defaults();
        params.insert("problem".into(), json!("cnn5"));
        params.insert("optimizer".into(), json!({"name": "shampoo", "lr": 0.1, "block_size": 64}));
        let p = Params::parse(&params).unwrap();
        assert_eq!((p.problem, p.optimizer.shampoo.block_size), (Problem::Cnn5 { width: 16 }, 64));
        assert!(p.records_at(p.steps) && p.records_at(p.record_every) && !p.records_at(1));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value, want) in [
            ("optimizer", json!({"name": "shampoo", "lr": 0.1, "betas": [0.9, 0.99]}), "params.optimizer.betas"),
            ("condition_number", json!(0.5), "params.condition_number"),
            ("problem", json!("svm"), "params.problem"),
            ("steps", json!(1u64 << 40), "params.steps"),
            ("points", json!(0), "params.points"),
        ] {
            let mut params = OPTIMIZERS.defaults();
            params.insert(key.into(), value);
            let err = Params::parse(&params).unwrap_err().to_string();
            assert!(err.starts_with(want), "{key}: {err}");
        }
    }
}
