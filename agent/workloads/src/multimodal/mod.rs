//! The `multimodal` workload: birds from images and captions together (CUB-200-2011 with the text
//! of Reed et al. 2016, or a synthetic set in that layout), through an image encoder, a text
//! encoder and one of seven fusions ([`model::Fusion`]). It reports each fusion's test accuracy,
//! per class, and with each modality removed at test time; modality dropout in training teaches a
//! fused network to do without either.

mod batches;
mod model;
mod params;
mod report;
#[cfg(test)]
mod tests;

pub use params::Params;

use crate::data::{self, cub};
use crate::error::TrialError;
use crate::harness::{self, GraphMode, Plan, Precision};
use crate::models;
use crate::optim::Optimizer;
use crate::{Sink, TrialContext};
use batches::{Examples, MultimodalData};
use model::{Layout, MultimodalNet, Spec};
use std::path::{Path, PathBuf};
use sweep_spec::TrialSpec;
use tch::nn::VarStore;
use tch::Tensor;

/// The data format `multimodal` reads.
pub const FORMAT: &str = "cub";

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config("data: workload `multimodal` needs a [data] section with format = \"cub\" and `path`")
    })?;
    if data_ref.format != FORMAT {
        return Err(TrialError::bad_config(format!(
            "data.format: workload `multimodal` reads \"{FORMAT}\" (the CUB-200-2011 layout), got \"{}\"",
            data_ref.format
        )));
    }
    let root = PathBuf::from(
        data_ref
            .path
            .as_deref()
            .ok_or_else(|| TrialError::bad_config("data.path: expected the folder of the data set (missing)"))?,
    );
    let synthetic = cub::synthetic_option(&data_ref.options).map_err(TrialError::bad_config)?;
    if let (Some(synth), false) = (synthetic, root.exists()) {
        eprintln!(
            "writing a synthetic CUB set of {} classes ({} training and {} test images each) to {}",
            synth.classes(),
            synth.train_per_class,
            synth.test_per_class,
            root.display()
        );
        data::write_in_place(&root, |tmp| cub::write_synthetic(tmp, &synth))?;
    }
    present(&root)?;
    let set = cub::load(&root, &data_ref.options, p.vocab_size)?;
    let (channels, side) = (set.train.images.channels as i64, set.train.images.height as i64);
    let classes = set.class_names.len() as i64;
    let mut train = examples(set.train);
    if p.n_train > 0 {
        train.truncate(p.n_train);
    }
    let data = MultimodalData {
        layout: Layout { channels, side, text_len: p.text_len },
        train,
        test: examples(set.test),
        batch_size: p.batch_size,
        seed: p.seed,
        modality_dropout: p.modality_dropout,
    };

    let mut vars = VarStore::new(ctx.device);
    tch::manual_seed(p.seed as i64);
    let net = MultimodalNet::new(
        &vars.root(),
        &Spec {
            layout: data.layout,
            fusion: p.fusion,
            image_encoder: p.image_encoder,
            width: p.width,
            text_encoder: p.text_encoder,
            vocab: set.vocab.len() as i64,
            dim: p.dim,
            heads: p.heads,
            text_layers: p.text_layers,
            classes,
            dropout: p.dropout,
            mean: set.mean,
            std: set.std,
        },
    )
    .map_err(|e| TrialError::bad_config(format!("params.{e}")))?;
    let parameters = models::parameter_count(&vars);
    eprintln!(
        "multimodal: {} training and {} test images of {classes} classes at {side} px, vocabulary {}; {} fusion of {parameters} parameters",
        data.train.len(),
        data.test.len(),
        set.vocab.len(),
        net.fusion(),
    );
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vars);
    let mut plan = Plan::new(&spec.workload, ctx, p.epochs, p.seed);
    plan.eval_every = p.eval_every;
    plan.precision = Precision::parse(&p.precision, ctx.device).map_err(TrialError::bad_config)?;
    // Replaying a captured step is proven on the image networks; this one trains eagerly until it
    // is measured on a GPU.
    plan.cuda_graphs = GraphMode::Off;
    let objective = report::Report { data: &data, classes, parameters };
    let trial = harness::Trial {
        net: &net,
        vars: &mut vars,
        optimizer: &mut optimizer,
        schedule: &p.schedule,
        base_lr: p.optimizer.lr,
        data: &data,
        objective: &objective,
        checkpoint_dir: ctx.checkpoint_dir.clone(),
    };
    harness::train(trial, &plan, sink)
}

/// Refuses a data folder that is not there, saying how to make one.
fn present(root: &Path) -> Result<(), TrialError> {
    if root.exists() {
        return Ok(());
    }
    Err(TrialError::bad_config(format!(
        "data: {} does not exist; point it at CUB_200_2011 (with text_c10, or `text = ...`), or write a synthetic set there with `sweep data synth --cub --out {}`",
        root.display(),
        root.display()
    )))
}

/// A split as the batches read it.
fn examples(split: cub::CubSplit) -> Examples {
    let raw = split.images;
    let (n, c, h, w) = (raw.len() as i64, raw.channels as i64, raw.height as i64, raw.width as i64);
    Examples {
        images: Tensor::from_slice(&raw.pixels).view([n, c, h, w]),
        labels: raw.labels,
        captions: split.captions,
    }
}
