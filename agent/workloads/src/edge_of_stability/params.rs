//! The parameters of `edge_of_stability`, typed and checked. Defaults live in
//! `sweep_spec::workloads::EDGE_OF_STABILITY` only; a trial arrives with every parameter set.

use super::full_batch::Loss;
use super::lanczos::Settings;
use crate::error::TrialError;
use crate::models::dense::Activation;
use crate::optim::{OptimizerConfig, OptimizerKind, DEFAULT_BETAS};
use serde::Deserialize;
use serde_json::{Map, Value};
use sweep_spec::workloads::EDGE_OF_STABILITY;

/// The parameters exactly as the trial carries them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    model: String,
    activation: String,
    width: i64,
    depth: i64,
    loss: String,
    lr: f64,
    optimizer: String,
    beta: f64,
    steps: i64,
    sharpness_every: i64,
    eigenvalues: i64,
    lanczos_iters: i64,
    lanczos_tol: f64,
    n_train: i64,
    chunk_size: i64,
    seed: i64,
}

/// The network trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Fully connected: `depth` hidden layers of `width` units.
    Mlp { activation: Activation, width: usize, depth: usize },
    /// The 5-layer CNN of `models/` with k = `width`.
    Cnn5 { width: i64 },
}

/// How each step moves the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Gd,
    /// Heavy-ball momentum (PyTorch's SGD momentum).
    GdMomentum,
    Adam,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub model: Model,
    pub loss: Loss,
    pub lr: f64,
    pub method: Method,
    pub beta: f64,
    pub steps: u32,
    pub sharpness_every: u32,
    pub lanczos: Settings,
    /// 0: every training image.
    pub n_train: usize,
    pub chunk_size: i64,
    pub seed: u64,
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &EDGE_OF_STABILITY)?;
        let raw: RawParams = serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| TrialError::bad_config(format!("params: {e}")))?;
        // The catalogue has checked every name and bound; what is left is the typing.
        let activation = Activation::parse(&raw.activation).expect("checked against the catalogue");
        let (width, depth) = (raw.width.max(1), raw.depth.max(1));
        let model = match raw.model.as_str() {
            "cnn5" => Model::Cnn5 { width },
            _ => Model::Mlp { activation, width: width as usize, depth: depth as usize },
        };
        Ok(Params {
            model,
            loss: if raw.loss == "ce" { Loss::CrossEntropy } else { Loss::Mse },
            lr: raw.lr,
            method: match raw.optimizer.as_str() {
                "gd_momentum" => Method::GdMomentum,
                "adam" => Method::Adam,
                _ => Method::Gd,
            },
            beta: raw.beta,
            steps: crate::params::fits_u32("steps", raw.steps)?,
            sharpness_every: crate::params::fits_u32("sharpness_every", raw.sharpness_every)?,
            lanczos: Settings {
                k: raw.eigenvalues as usize,
                max_iters: raw.lanczos_iters as usize,
                tol: raw.lanczos_tol,
            },
            n_train: raw.n_train.max(0) as usize,
            chunk_size: raw.chunk_size,
            seed: raw.seed.max(0) as u64,
        })
    }

    /// The optimizer that takes the steps, without weight decay or clipping.
    pub fn optimizer(&self) -> OptimizerConfig {
        let adam = self.method == Method::Adam;
        let name = if adam { OptimizerKind::Adam } else { OptimizerKind::Sgd };
        OptimizerConfig {
            momentum: if self.method == Method::GdMomentum { self.beta } else { 0.0 },
            beta1: if adam { self.beta } else { DEFAULT_BETAS.0 },
            ..OptimizerConfig::new(name, self.lr)
        }
    }

    /// The sharpness above which the method's iteration on a quadratic diverges: 2/eta for gradient
    /// descent, (2 + 2 beta)/eta with heavy-ball momentum, and for Adam, whose preconditioned
    /// sharpness is compared, (2 + 2 beta1)/((1 - beta1) eta) (Cohen et al. 2022: 38/eta at 0.9).
    pub fn stability_threshold(&self) -> f64 {
        match self.method {
            Method::Gd => 2.0 / self.lr,
            Method::GdMomentum => (2.0 + 2.0 * self.beta) / self.lr,
            Method::Adam => (2.0 + 2.0 * self.beta) / ((1.0 - self.beta) * self.lr),
        }
    }

    /// Whether the sharpness is measured at the iterate that step `step` (from 0) starts from.
    pub fn measures_at(&self, step: u32) -> bool {
        step.is_multiple_of(self.sharpness_every) || step + 1 == self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(changes: &[(&str, Value)]) -> String {
        let mut m = EDGE_OF_STABILITY.defaults();
        for (k, v) in changes {
            m.insert(k.to_string(), v.clone());
        }
        match Params::parse(&m) {
            Err(TrialError::BadConfig(message)) => message,
            other => panic!("expected a bad configuration, got {other:?}"),
        }
    }

    #[test]
    fn defaults_parse_into_cohen_et_al_s_fc_tanh() {
        let p = Params::parse(&EDGE_OF_STABILITY.defaults()).unwrap();
        assert_eq!(p.model, Model::Mlp { activation: Activation::Tanh, width: 200, depth: 2 });
        assert_eq!((p.loss, p.method, p.n_train), (Loss::Mse, Method::Gd, 5000));
        assert_eq!(p.stability_threshold(), 2.0 / 0.02);
        assert_eq!(p.optimizer().momentum, 0.0);
    }

    #[test]
    fn thresholds_follow_the_method() {
        let mut m = EDGE_OF_STABILITY.defaults();
        m.insert("lr".into(), json!(0.1));
        m.insert("optimizer".into(), json!("gd_momentum"));
        let p = Params::parse(&m).unwrap();
        assert!((p.stability_threshold() - 38.0).abs() < 1e-9);
        assert_eq!(p.optimizer().momentum, 0.9);
        m.insert("optimizer".into(), json!("adam"));
        let p = Params::parse(&m).unwrap();
        assert!((p.stability_threshold() - 380.0).abs() < 1e-9);
        assert_eq!((p.optimizer().name, p.optimizer().beta1), (OptimizerKind::Adam, 0.9));
    }

    #[test]
    fn messages_name_the_parameter() {
        assert_eq!(message(&[("lr", json!(0))]), "params.lr: expected a number > 0, got 0");
        assert!(message(&[("optimizer", json!("sgd"))]).starts_with("params.optimizer: expected one of"));
        assert!(message(&[("eigenvalues", json!(6))]).starts_with("params.eigenvalues: expected an integer in [1, 5]"));
        assert!(message(&[("sharpness_every", json!(0))]).starts_with("params.sharpness_every:"));
        assert!(message(&[("steps", json!(1u64 << 40))]).starts_with("params.steps: expected at most"));
        assert!(message(&[("activation", json!("<script>"))]).starts_with("params.activation:"));
    }
}
