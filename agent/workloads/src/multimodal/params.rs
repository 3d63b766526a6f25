//! The parameters of `multimodal`, typed and checked. Defaults live in
//! `sweep_spec::workloads::MULTIMODAL` only; a trial arrives with every parameter set.

use super::model::{Fusion, TextEncoder};
use crate::error::TrialError;
use crate::models::Arch;
use crate::optim::{LrSchedule, OptimizerConfig};
use serde_json::{Map, Value};
use sweep_spec::workloads::MULTIMODAL;

#[derive(Debug, Clone)]
pub struct Params {
    pub fusion: Fusion,
    pub image_encoder: Arch,
    pub width: i64,
    pub text_encoder: TextEncoder,
    pub dim: i64,
    pub heads: i64,
    pub text_layers: i64,
    pub text_len: i64,
    pub vocab_size: usize,
    pub modality_dropout: f64,
    pub dropout: f64,
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
const MAX_WIDTH: i64 = 4096;
const MAX_DIM: i64 = 16_384;
const MAX_TEXT_LEN: i64 = 4096;
const MAX_LAYERS: i64 = 64;
const MAX_VOCAB: i64 = 4_000_000;

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, TrialError> {
        crate::params::check(params, &MULTIMODAL)?;
        let int = |k: &str| params[k].as_i64().expect("checked integer");
        let float = |k: &str| params[k].as_f64().expect("checked number");
        let word = |k: &str| params[k].as_str().expect("checked string");
        let named = |e: String| TrialError::bad_config(format!("params.{e}"));
        let at_most = |k: &str, max: i64| crate::params::int_at_most(params, k, max);
        let epochs = crate::params::fits_u32("epochs", int("epochs"))?;
        let image_encoder: Arch =
            word("image_encoder").parse().map_err(|e: String| named(e.replacen("arch", "image_encoder", 1)))?;
        if image_encoder == Arch::Mlp {
            return Err(TrialError::bad_config(
                "params.image_encoder: expected cnn5 or preact_resnet18 (a network with a feature map), got mlp",
            ));
        }
        let p = Params {
            fusion: word("fusion").parse().map_err(named)?,
            image_encoder,
            width: at_most("width", MAX_WIDTH)?,
            text_encoder: word("text_encoder").parse().map_err(named)?,
            dim: at_most("dim", MAX_DIM)?,
            heads: int("heads"),
            text_layers: at_most("text_layers", MAX_LAYERS)?,
            text_len: at_most("text_len", MAX_TEXT_LEN)?,
            vocab_size: at_most("vocab_size", MAX_VOCAB)? as usize,
            modality_dropout: float("modality_dropout"),
            dropout: float("dropout"),
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
        if p.dim % p.heads != 0 && (p.text_encoder == TextEncoder::Transformer || p.fusion == Fusion::CrossAttention) {
            return Err(TrialError::bad_config(format!(
                "params.dim: expected a multiple of heads = {} (the transformer and cross-attention split it), got {}",
                p.heads, p.dim
            )));
        }
        Ok(p)
    }
}
