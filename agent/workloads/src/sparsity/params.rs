//! The parameters of `sparsity`, typed and checked, and the pruning schedule they describe.
//! Defaults live in `sweep_spec::workloads::SPARSITY` only; a trial arrives with every parameter
//! set.

use super::masks::Scope;
use crate::error::TrialError;
use crate::models::Arch;
use crate::optim::{LrSchedule, OptimizerConfig};
use serde_json::{Map, Value};
use sweep_spec::workloads::SPARSITY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// 784-300-100-10 fully connected with ReLU (LeCun et al. 1998; Han et al. 2015), on any image
    /// size: the input layer takes C x H x W.
    Lenet300100,
    Net(Arch),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Dense,
    Magnitude,
    Random,
    Structured,
    L1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruning {
    OneShot,
    Gradual,
    /// Lottery tickets (Frankle & Carbin 2019): rounds that each prune more and restart from the
    /// weights of `rewind_epoch`.
    Iterative,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub model: Model,
    pub width: i64,
    pub method: Method,
    pub scope: Scope,
    pub pruning: Pruning,
    pub final_sparsity: f64,
    pub begin: u32,
    pub end: u32,
    pub l1: f64,
    pub rounds: u32,
    pub rewind_epoch: u32,
    pub quantize: bool,
    pub inference_batch: i64,
    /// Per round for `lottery`.
    pub epochs: u32,
    pub batch_size: i64,
    pub augment: bool,
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    pub n_train: usize,
    pub eval_every: u32,
    pub seed: u64,
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &SPARSITY)?;
        // The catalogue has checked presence, types and bounds; what is left is typing and how the
        // values fit together.
        let int = |k: &str| params[k].as_i64().expect("checked integer");
        let num = |k: &str| params[k].as_f64().expect("checked number");
        let word = |k: &str| params[k].as_str().expect("checked string");
        let count = |k: &str| crate::params::fits_u32(k, int(k));
        let model = match word("model") {
            "lenet300_100" => Model::Lenet300100,
            "cnn5" => Model::Net(Arch::Cnn5),
            _ => Model::Net(Arch::PreactResnet18),
        };
        let method = match word("method") {
            "dense" => Method::Dense,
            "random" => Method::Random,
            "structured" => Method::Structured,
            "l1" => Method::L1,
            _ => Method::Magnitude,
        };
        let epochs = count("epochs")?;
        let rounds = count("rounds")?;
        let weight_decay = num("weight_decay");
        let p = Params {
            model,
            width: int("width"),
            method,
            scope: if word("scope") == "layer" { Scope::Layer } else { Scope::Global },
            pruning: match word("pruning") {
                "gradual" => Pruning::Gradual,
                "iterative" => Pruning::Iterative,
                _ => Pruning::OneShot,
            },
            final_sparsity: num("final_sparsity"),
            begin: count("begin")?,
            end: count("end")?,
            l1: num("l1"),
            rounds,
            rewind_epoch: count("rewind_epoch")?,
            quantize: params["quantize"].as_bool().expect("checked bool"),
            inference_batch: int("inference_batch"),
            epochs,
            batch_size: int("batch_size"),
            augment: params["augment"].as_bool().expect("checked bool"),
            optimizer: OptimizerConfig::from_params(
                params["optimizer"].as_object().expect("checked table"),
                weight_decay,
            )
            .map_err(TrialError::bad_config)?,
            schedule: LrSchedule::from_params(Some(&params["schedule"]), epochs).map_err(TrialError::bad_config)?,
            n_train: int("n_train") as usize,
            eval_every: count("eval_every")?,
            seed: int("seed") as u64,
        };
        p.check_fit()?;
        Ok(p)
    }

    /// The constraints between keys, each message naming the keys.
    fn check_fit(&self) -> Result<(), TrialError> {
        let bad = |m: String| Err(TrialError::bad_config(m));
        match (self.method, self.pruning) {
            (Method::Dense, _) => {}
            (_, Pruning::Iterative) => {
                if self.rewind_epoch >= self.epochs {
                    return bad(format!(
                        "params.rewind_epoch: expected an epoch of the first round, below epochs = {}, got {}",
                        self.epochs, self.rewind_epoch
                    ));
                }
                if self.total_epochs().is_none() {
                    return bad(format!("params.rounds: {} rounds of {} epochs is too many", self.rounds, self.epochs));
                }
            }
            (_, pruning) => {
                if self.end >= self.epochs {
                    return bad(format!(
                        "params.end: expected an epoch below epochs = {} (pruning happens at the start of epoch `end`, counted from 0), got {}",
                        self.epochs, self.end
                    ));
                }
                if pruning == Pruning::Gradual && self.begin > self.end {
                    return bad(format!(
                        "params.begin: expected at most end = {} for pruning = \"gradual\", got {}",
                        self.end, self.begin
                    ));
                }
            }
        }
        if self.method == Method::Structured && self.model != Model::Lenet300100 {
            return bad(
                "params.method: \"structured\" removes neurons of fully connected layers: it takes model = \"lenet300_100\"; channel pruning of convolutions is not offered"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Epochs the run trains: `epochs`, or `rounds` x `epochs` when pruning is iterative.
    pub fn total_epochs(&self) -> Option<u32> {
        match (self.method, self.pruning) {
            (Method::Dense, _) => Some(self.epochs),
            (_, Pruning::Iterative) => self.rounds.checked_mul(self.epochs),
            _ => Some(self.epochs),
        }
    }

    /// Whether the run restarts each round from rewound weights (lottery tickets).
    pub fn rewinds(&self) -> bool {
        self.method != Method::Dense && self.pruning == Pruning::Iterative
    }

    /// The sparsity the network is pruned to before epoch `epoch` (from 0) trains, if it is
    /// pruned then.
    pub fn target_before(&self, epoch: u32) -> Option<f64> {
        let s = self.final_sparsity;
        match (self.method, self.pruning) {
            (Method::Dense, _) => None,
            (_, Pruning::Iterative) => {
                let round = epoch / self.epochs;
                (epoch.is_multiple_of(self.epochs) && round > 0)
                    .then(|| 1.0 - (1.0 - s).powf(round as f64 / (self.rounds - 1) as f64))
            }
            (_, Pruning::OneShot) => (epoch == self.end).then_some(s),
            (_, Pruning::Gradual) => {
                if epoch < self.begin || epoch > self.end {
                    return None;
                }
                let span = (self.end - self.begin) as f64;
                let done = if span == 0.0 { 1.0 } else { (epoch - self.begin) as f64 / span };
                // Zhu & Gupta 2017: s_t = s_f + (s_i - s_f)(1 - (t - t0) / (n dt))^3 with s_i = 0.
                Some(s * (1.0 - (1.0 - done).powi(3)))
            }
        }
    }

    /// Whether the L1 penalty is in the loss of epoch `epoch` (from 0): until `end`, or
    /// throughout when pruning is iterative.
    pub fn l1_during(&self, epoch: u32) -> bool {
        self.method == Method::L1 && self.l1 > 0.0 && (self.pruning == Pruning::Iterative || epoch < self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(pairs: &[(&str, Value)]) -> Result<Params, TrialError> {
        let mut params = SPARSITY.defaults();
        for (k, v) in pairs {
            params.insert(k.to_string(), v.clone());
        }
        Params::parse(&params)
    }

    #[test]
    fn the_schedules_reach_the_final_sparsity_and_only_grow() {
        let gradual = with(&[("pruning", json!("gradual")), ("begin", json!(2)), ("end", json!(12))]).unwrap();
        let targets: Vec<(u32, f64)> = (0..20).filter_map(|e| gradual.target_before(e).map(|s| (e, s))).collect();
        assert_eq!(targets.first().unwrap(), &(2, 0.0));
        assert_eq!(targets.last().unwrap(), &(12, 0.9));
        assert_eq!(targets.len(), 11);
        assert!(targets.windows(2).all(|w| w[1].1 > w[0].1), "{targets:?}");
        // Cubic: most of it early.
        assert!(targets[5].1 > 0.75, "{targets:?}");

        let one_shot = with(&[]).unwrap();
        let at: Vec<u32> = (0..20).filter(|&e| one_shot.target_before(e).is_some()).collect();
        assert_eq!((at, one_shot.target_before(12)), (vec![12], Some(0.9)));

        let lottery = with(&[("pruning", json!("iterative")), ("rounds", json!(3)), ("epochs", json!(4))]).unwrap();
        assert_eq!(lottery.total_epochs(), Some(12));
        let rounds: Vec<(u32, f64)> = (0..12).filter_map(|e| lottery.target_before(e).map(|s| (e, s))).collect();
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[0].0, 4);
        assert!((rounds[0].1 - (1.0 - 0.1f64.sqrt())).abs() < 1e-12, "{rounds:?}");
        assert_eq!(rounds[1], (8, 0.9));
    }

    #[test]
    fn keys_that_do_not_fit_together_are_named() {
        for (pairs, want) in [
            (vec![("end", json!(20))], "params.end"),
            (vec![("pruning", json!("gradual")), ("begin", json!(13))], "params.begin"),
            (vec![("method", json!("structured")), ("model", json!("cnn5"))], "params.method"),
            (vec![("pruning", json!("iterative")), ("rewind_epoch", json!(20))], "params.rewind_epoch"),
            (vec![("final_sparsity", json!(1.0))], "params.final_sparsity"),
            (vec![("method", json!("prune_all"))], "params.method"),
            (vec![("rounds", json!(1))], "params.rounds"),
        ] {
            let err = with(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(want), "{pairs:?}: {err}");
        }
        // Dense training has no pruning epoch to check, and iterative pruning no `end`.
        with(&[("method", json!("dense")), ("end", json!(50))]).unwrap();
        with(&[("pruning", json!("iterative")), ("end", json!(50))]).unwrap();
    }

    /// Every shipped study of this workload must parse, trial by trial, before it reaches a cluster.
    #[test]
    fn every_shipped_study_parses() {
        let studies = crate::params::shipped_studies(&SPARSITY);
        for (path, trials) in &studies {
            for trial in trials {
                Params::parse(&trial.params).unwrap_or_else(|e| panic!("{}: trial {}: {e}", path.display(), trial.id));
            }
        }
        assert!(!studies.is_empty(), "expected the small study");
    }
}
