//! The parameters of `seq2seq`, typed and checked. Defaults live in `sweep_spec::workloads::SEQ2SEQ`
//! only; a trial arrives with every parameter set.

use crate::error::TrialError;
use crate::models::transformer::{Form, Positions, TransformerSpec};
use crate::optim::{LrSchedule, OptimizerConfig};
use serde_json::{Map, Value};
use sweep_spec::workloads::SEQ2SEQ;

#[derive(Debug, Clone)]
pub struct Params {
    pub form: Form,
    pub d_model: i64,
    pub heads: i64,
    pub layers: i64,
    pub ff: i64,
    pub max_len: i64,
    pub positions: Positions,
    pub dropout: f64,
    pub vocab_size: usize,
    pub eval_positions: usize,
    pub continue_plies: i64,
    pub voices: usize,
    pub epochs: u32,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    pub n_train: usize,
    pub eval_every: u32,
    pub precision: String,
    pub seed: u64,
}

/// The most of a few keys that size memory, so a typo cannot ask for terabytes.
const MAX_D_MODEL: i64 = 16_384;
const MAX_LAYERS: i64 = 256;
const MAX_LEN: i64 = 65_536;
const MAX_VOCAB: i64 = 4_000_000;

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &SEQ2SEQ)?;
        let int = |k: &str| params[k].as_i64().expect("checked integer");
        let word = |k: &str| params[k].as_str().expect("checked string");
        let at_most = |k: &str, max: i64| crate::params::int_at_most(params, k, max);
        let epochs = crate::params::fits_u32("epochs", int("epochs"))?;
        let d_model = at_most("d_model", MAX_D_MODEL)?;
        let ff = at_most("ff", 4 * MAX_D_MODEL)?;
        let p = Params {
            form: word("form").parse().map_err(|e| TrialError::bad_config(format!("params.{e}")))?,
            d_model,
            heads: int("heads"),
            layers: at_most("layers", MAX_LAYERS)?,
            ff: if ff == 0 { 4 * d_model } else { ff },
            max_len: at_most("max_len", MAX_LEN)?,
            positions: word("positions").parse().map_err(|e| TrialError::bad_config(format!("params.{e}")))?,
            dropout: params["dropout"].as_f64().expect("checked number"),
            vocab_size: at_most("vocab_size", MAX_VOCAB)? as usize,
            eval_positions: at_most("eval_positions", 1_000_000)? as usize,
            continue_plies: at_most("continue_plies", MAX_LEN)?,
            voices: at_most("voices", 1024)? as usize,
            epochs,
            batch_size: at_most("batch_size", 1 << 20)? as usize,
            optimizer: OptimizerConfig::from_params(
                params["optimizer"].as_object().expect("checked table"),
                params["weight_decay"].as_f64().expect("checked number"),
            )
            .map_err(TrialError::bad_config)?,
            schedule: LrSchedule::from_params(Some(&params["schedule"]), epochs).map_err(TrialError::bad_config)?,
            n_train: int("n_train") as usize,
            eval_every: crate::params::fits_u32("eval_every", int("eval_every"))?,
            precision: word("precision").to_string(),
            seed: int("seed") as u64,
        };
        // The vocabulary is known once the data is read; any valid size stands in for it here.
        p.model(6).validate().map_err(|e| TrialError::bad_config(format!("params.{e}")))?;
        Ok(p)
    }

    /// The transformer of these parameters over a vocabulary of `vocab` tokens.
    pub fn model(&self, vocab: i64) -> TransformerSpec {
        TransformerSpec {
            form: self.form,
            vocab,
            d_model: self.d_model,
            heads: self.heads,
            layers: self.layers,
            ff: self.ff,
            max_len: self.max_len,
            positions: self.positions,
            dropout: self.dropout,
        }
    }
}
