//! The parameters of `long_tail`, parsed from a trial's resolved table and checked, with messages
//! that name the key. Defaults live in `sweep_spec::workloads::LONG_TAIL` only.

use super::loss::{LossKind, LossSettings};
use super::network::Backbone;
use crate::data::SamplerKind;
use crate::error::TrialError;
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::params::{at_least, in_range};
use serde_json::{Map, Value};
use sweep_spec::workloads::LONG_TAIL;

#[derive(Debug, Clone)]
pub struct Params {
    pub backbone: Backbone,
    pub hidden: i64,
    pub loss: LossSettings,
    pub sampler: SamplerKind,
    pub posthoc_tau: f64,
    pub tau_norm: f64,
    pub crt_epochs: u32,
    pub augment: bool,
    pub epochs: u32,
    pub batch_size: i64,
    pub optimizer: OptimizerConfig,
    /// The schedule as written, resolved per stage (the cRT stage has its own length).
    pub schedule: Value,
    pub eval_every: u32,
    pub precision: String,
    pub seed: u64,
}

/// A parse error of `params.<key>`.
fn named(key: &str, e: String) -> TrialError {
    TrialError::bad_config(format!("params.{key}: {e}"))
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &LONG_TAIL)?;
        let int = |k: &str| params[k].as_i64().expect("checked integer");
        let num = |k: &str| params[k].as_f64().expect("checked number");
        let text = |k: &str| params[k].as_str().expect("checked string");
        let non_negative = |k: &str| in_range(k, num(k), num(k) >= 0.0, "a number >= 0");
        let epochs = at_least("epochs", int("epochs"), 1)? as u32;
        let weight_decay = non_negative("weight_decay")?;
        let cb_beta = num("cb_beta");
        let loss = LossSettings {
            kind: LossKind::parse(text("loss")).map_err(|e| named("loss", e))?,
            focal_gamma: non_negative("focal_gamma")?,
            cb_beta: in_range("cb_beta", cb_beta, (0.0..1.0).contains(&cb_beta), "a number in [0, 1)")?,
            ldam_max_margin: non_negative("ldam_max_margin")?,
            ldam_scale: in_range("ldam_scale", num("ldam_scale"), num("ldam_scale") > 0.0, "a number > 0")?,
            drw_epoch: at_least("drw_epoch", int("drw_epoch"), 0)? as u32,
            logit_adjust_tau: non_negative("logit_adjust_tau")?,
        };
        let schedule = params["schedule"].clone();
        LrSchedule::from_params(Some(&schedule), epochs).map_err(TrialError::bad_config)?;
        let crt_epochs = at_least("crt_epochs", int("crt_epochs"), 0)? as u32;
        if crt_epochs > 0 {
            // The cRT stage runs the same schedule over its own length.
            LrSchedule::from_params(Some(&schedule), crt_epochs)
                .map_err(|e| TrialError::bad_config(format!("{e} (the cRT stage has crt_epochs = {crt_epochs})")))?;
        }
        Ok(Params {
            backbone: Backbone::parse(text("model")).map_err(|e| named("model", e))?,
            hidden: at_least("hidden", int("hidden"), 1)? as i64,
            loss,
            sampler: SamplerKind::parse(text("sampler")).map_err(|e| named("sampler", e))?,
            posthoc_tau: non_negative("posthoc_tau")?,
            tau_norm: non_negative("tau_norm")?,
            crt_epochs,
            augment: params["augment"].as_bool().expect("checked bool"),
            epochs,
            batch_size: at_least("batch_size", int("batch_size"), 1)? as i64,
            optimizer: OptimizerConfig::from_params(
                params["optimizer"].as_object().expect("checked table"),
                weight_decay,
            )
            .map_err(TrialError::bad_config)?,
            schedule,
            eval_every: at_least("eval_every", int("eval_every"), 1)? as u32,
            precision: {
                let value = text("precision");
                crate::harness::Precision::parse(value, tch::Device::Cpu).map_err(TrialError::bad_config)?;
                value.to_string()
            },
            seed: at_least("seed", int("seed"), 0)? as u64,
        })
    }

    /// The learning-rate schedule of a stage of `epochs` epochs.
    pub fn schedule(&self, epochs: u32) -> LrSchedule {
        LrSchedule::from_params(Some(&self.schedule), epochs).expect("checked when parsed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn defaults() -> Map<String, Value> {
        LONG_TAIL.defaults()
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value, says) in [
            ("loss", json!("hinge"), "params.loss: expected one of \"ce\""),
            ("sampler", json!("uniform"), "params.sampler: expected one of \"instance\""),
            ("model", json!("vgg"), "params.model"),
            ("cb_beta", json!(1.0), "params.cb_beta"),
            ("ldam_scale", json!(0.0), "params.ldam_scale"),
            ("posthoc_tau", json!(-1.0), "params.posthoc_tau"),
            ("crt_epochs", json!(-1), "params.crt_epochs"),
        ] {
            let mut p = defaults();
            p.insert(key.into(), value);
            let err = Params::parse(&p).unwrap_err().to_string();
            assert!(err.starts_with(says), "{key}: {err}");
        }
        assert!(Params::parse(&defaults()).is_ok());
        // A warm-up longer than the cRT stage is caught before training, not after the first stage.
        let mut p = defaults();
        p.insert("schedule".into(), json!({"name": "cosine", "warmup_epochs": 5}));
        p.insert("crt_epochs".into(), json!(3));
        let err = Params::parse(&p).unwrap_err().to_string();
        assert!(err.contains("warmup_epochs") && err.contains("crt_epochs = 3"), "{err}");
    }

    /// Every shipped study of this workload must parse, trial by trial, before it reaches a cluster.
    #[test]
    fn every_shipped_study_parses() {
        let studies = crate::params::shipped_studies(&LONG_TAIL);
        for (path, trials) in &studies {
            for trial in trials {
                Params::parse(&trial.params).unwrap_or_else(|e| panic!("{}: trial {}: {e}", path.display(), trial.id));
            }
        }
        assert!(studies.len() >= 3, "expected the small, CIFAR-10-LT and ImageNet-LT studies");
    }
}
