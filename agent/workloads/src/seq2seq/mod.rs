//! The `seq2seq` workload: a transformer ([`crate::models::transformer`]) learning to continue or
//! translate sequences, from the `sequences` text format ([`crate::data::sequences`]: Bach
//! chorales' soprano into the other voices, or any `source<TAB>target` pairs) or from chess games
//! in PGN (the next moves from the moves so far). Both forms, encoder-decoder and decoder-only,
//! train through the one training loop, so they checkpoint, resume mid-epoch and pause at rungs
//! like every other workload.

mod batches;
mod chess;
mod params;
mod report;
#[cfg(test)]
mod tests;

pub use params::Params;

use crate::data;
use crate::error::TrialError;
use crate::harness::{self, GraphMode, Plan, Precision};
use crate::models::{self, transformer::Transformer};
use crate::optim::Optimizer;
use crate::{Sink, TrialContext};
use batches::SequenceData;
use std::path::PathBuf;
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

/// The data formats `seq2seq` reads.
pub const FORMATS: [&str; 2] = ["sequences", "pgn"];

/// Refuses a data folder that is not there, saying how to make one.
fn present(root: &std::path::Path, how: &str) -> Result<(), TrialError> {
    if root.exists() {
        Ok(())
    } else {
        Err(TrialError::bad_config(format!("data: {} does not exist; {how}", root.display())))
    }
}

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config(
            "data: workload `seq2seq` needs a [data] section with `format` (sequences or pgn) and `path`",
        )
    })?;
    let root = PathBuf::from(
        data_ref
            .path
            .as_deref()
            .ok_or_else(|| TrialError::bad_config("data.path: expected the folder of the data set (missing)"))?,
    );
    let (corpus, test_games) = match data_ref.format.as_str() {
        "sequences" => {
            if let Some(other) = data_ref.options.keys().next() {
                return Err(TrialError::bad_config(format!("data.{other}: the sequences format takes no such key")));
            }
            present(&root, "write train.txt and test.txt there (README, \"Sequence-to-sequence\")")?;
            (data::sequences::load(&root, p.vocab_size)?, None)
        }
        "pgn" => {
            let synthetic = data::pgn::synthetic_option(&data_ref.options).map_err(TrialError::bad_config)?;
            if let (Some(synth), false) = (synthetic, root.exists()) {
                eprintln!(
                    "writing {} training and {} test games of the seeded engine to {}",
                    synth.train,
                    synth.test,
                    root.display()
                );
                data::write_in_place(&root, |tmp| data::pgn::write_synthetic(tmp, &synth))?;
            }
            present(
                &root,
                &format!("write games there with `sweep data synth --chess 5000 --out {}`", root.display()),
            )?;
            let (corpus, games) = chess::load(&root)?;
            (corpus, Some(games))
        }
        other => {
            return Err(TrialError::bad_config(format!(
                "data.format: workload `seq2seq` reads {}, got \"{other}\"",
                FORMATS.join(" or ")
            )))
        }
    };
    let mut train = corpus.train;
    if p.n_train > 0 {
        train.truncate(p.n_train);
    }
    let data = SequenceData {
        form: p.form,
        max_len: p.max_len as usize,
        train,
        test: corpus.test,
        batch_size: p.batch_size,
        seed: p.seed,
    };
    let vocab_len = corpus.vocab.len();
    let held_out =
        test_games.map(|games| chess::HeldOut::new(&games, corpus.vocab, p.eval_positions, &data, p.continue_plies));

    let mut vars = VarStore::new(ctx.device);
    tch::manual_seed(p.seed as i64);
    let net = Transformer::new(&vars.root(), &p.model(vocab_len as i64))
        .map_err(|e| TrialError::bad_config(format!("params.{e}")))?;
    let parameters = models::parameter_count(&vars);
    eprintln!(
        "seq2seq: {} {} training and {} test examples, vocabulary {}; {} transformer of {parameters} parameters",
        data.train.len(),
        data_ref.format,
        data.test.len(),
        vocab_len,
        p.form,
    );
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vars);
    let mut plan = Plan::new(&spec.workload, ctx, p.epochs, p.seed);
    plan.eval_every = p.eval_every;
    plan.precision = Precision::parse(&p.precision, ctx.device).map_err(TrialError::bad_config)?;
    // Batches are as long as their longest row, so their shapes change and a captured graph
    // would not replay.
    plan.cuda_graphs = GraphMode::Off;
    let objective = report::Report { model: &net, parameters, voices: p.voices, chess: held_out.as_ref() };
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
