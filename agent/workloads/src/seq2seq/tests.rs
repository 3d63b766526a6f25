//! The workload end to end on files in the real formats, read back through the real readers: both
//! forms learn a task that needs the whole source, a trial stopped mid-epoch resumes to the same
//! records, voices are scored apart, and chess games train towards legal moves that python-chess
//! judges as the metric does.

use crate::dispatch::{checkpointed_ctx as ctx_in, run_recorded as run};
use crate::harness::StopFlag;
use crate::numeric_checks::{assert_same_runs, relative, SAME_KERNELS};
use crate::rng::{Rng, Stream};
use crate::{TrialContext, TrialError};
use serde_json::{json, Map, Value};
use std::path::Path;
use sweep_spec::workloads::SEQ2SEQ;
use sweep_spec::{DataRef, EpochRecord, TrialSpec};

fn spec(format: &str, data: &Path, changes: &[(&str, Value)]) -> TrialSpec {
    let mut params = SEQ2SEQ.defaults();
    for (k, v) in [
        ("d_model", json!(32)),
        ("layers", json!(2)),
        ("heads", json!(4)),
        ("max_len", json!(32)),
        ("epochs", json!(6)),
        ("batch_size", json!(32)),
        ("optimizer", json!({"name": "adamw", "lr": 3e-3})),
        ("seed", json!(1)),
    ]
    .iter()
    .chain(changes)
    {
        params.insert(k.to_string(), v.clone());
    }
    let mut spec = crate::dispatch::trial_spec(SEQ2SEQ.name, params);
    spec.data = Some(DataRef { format: format.into(), path: Some(data.display().to_string()), options: Map::new() });
    spec
}

fn metric(records: &[EpochRecord], name: &str) -> Vec<f64> {
    records.iter().map(|r| r.metrics[name]).collect()
}

/// `count` lines of `source<TAB>target`: 3 to 6 letters of a..h, and `target` of them.
fn pairs(count: usize, seed: u64, target: impl Fn(&[String], &mut Rng) -> Vec<String>) -> Vec<String> {
    let mut rng = Rng::new(seed, Stream::TrainInputs);
    (0..count)
        .map(|_| {
            let len = 3 + rng.below(4) as usize;
            let source: Vec<String> = (0..len).map(|_| ((b'a' + rng.below(8) as u8) as char).to_string()).collect();
            format!("{}\t{}", source.join(" "), target(&source, &mut rng).join(" "))
        })
        .collect()
}

fn reversal_set(dir: &Path) {
    let reverse = |s: &[String], _: &mut Rng| s.iter().rev().cloned().collect();
    crate::data::sequences::write(dir, &pairs(800, 1, reverse), &pairs(100, 2, reverse)).unwrap();
}

/// Reversing the source needs every source token at every target position: both forms learn it.
#[test]
fn both_forms_learn_to_reverse_their_source() {
    let dir = tempfile::tempdir().unwrap();
    reversal_set(dir.path());
    for form in ["decoder_only", "encoder_decoder"] {
        let s = spec("sequences", dir.path(), &[("form", json!(form)), ("epochs", json!(12))]);
        let (result, records) = run(&s, &TrialContext::cpu());
        result.unwrap();
        let acc = metric(&records, "val_token_acc");
        let loss = metric(&records, "val_loss");
        eprintln!("{form}: val_token_acc {acc:?}");
        assert!(acc[0] < 0.6 && *acc.last().unwrap() > 0.85, "{form}: {acc:?}");
        assert!(loss.last().unwrap() < &loss[0], "{form}: {loss:?}");
        let last = &records.last().unwrap().metrics;
        assert!((last["val_perplexity"] - last["val_loss"].exp()).abs() < 1e-9);
        assert!(last["parameters"] > 10_000.0);
    }
}

/// A stop at a batch of the third epoch checkpoints; the resumed run reports what the run that
/// was never stopped reports, with dropout drawing at every batch.
#[test]
fn a_trial_stopped_mid_epoch_resumes_to_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    reversal_set(dir.path());
    for form in ["decoder_only", "encoder_decoder"] {
        let s = spec(
            "sequences",
            dir.path(),
            &[("form", json!(form)), ("epochs", json!(3)), ("dropout", json!(0.1)), ("positions", json!("sinusoidal"))],
        );
        let (straight, uninterrupted) = run(&s, &TrialContext::cpu());
        straight.unwrap();
        let ckpt = tempfile::tempdir().unwrap();
        // 25 batches per epoch: the 60th check is batch 10 of epoch 3.
        let (first, before) = run(&s, &ctx_in(ckpt.path(), StopFlag::after_checks(60), None));
        assert!(matches!(first, Err(TrialError::Interrupted)), "{first:?}");
        assert_eq!(before.len(), 2);
        let (second, after) = run(&s, &ctx_in(ckpt.path(), StopFlag::default(), None));
        second.unwrap();
        let resumed: Vec<EpochRecord> = before.into_iter().chain(after).collect();
        assert_same_runs(form, &resumed, &uninterrupted, relative(SAME_KERNELS));
    }
}

/// A target interleaving two voices, one a copy of the source and one drawn at random: the first
/// is learnt, the second cannot be, and `voice_acc/<v>` tells them apart.
#[test]
fn voices_are_scored_apart() {
    let dir = tempfile::tempdir().unwrap();
    let voices = |s: &[String], rng: &mut Rng| {
        s.iter().flat_map(|w| [w.clone(), ((b'a' + rng.below(8) as u8) as char).to_string()]).collect()
    };
    crate::data::sequences::write(dir.path(), &pairs(800, 3, voices), &pairs(100, 4, voices)).unwrap();
    let s = spec("sequences", dir.path(), &[("form", json!("encoder_decoder")), ("voices", json!(2))]);
    let (result, records) = run(&s, &TrialContext::cpu());
    result.unwrap();
    let last = &records.last().unwrap().metrics;
    let (copied, random) = (last["voice_acc/0"], last["voice_acc/1"]);
    assert!(copied > 0.9 && random < 0.4, "copied voice {copied}, random voice {random}");
}

#[test]
fn bad_parameters_and_data_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    reversal_set(dir.path());
    for (changes, want) in [
        (vec![("d_model", json!(30))], "params.d_model: expected a positive multiple of heads = 4, got 30"),
        (vec![("d_model", json!(1 << 20))], "params.d_model: expected at most 16384"),
        (vec![("form", json!("rnn"))], "params.form"),
        (vec![("max_len", json!(2))], "params.max_len"),
    ] {
        let err = crate::check_params(&spec("sequences", dir.path(), &changes)).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should contain {want}");
    }
    let (result, _) = run(&spec("cifar10", dir.path(), &[]), &TrialContext::cpu());
    let err = result.unwrap_err().to_string();
    assert!(err.contains("data.format: workload `seq2seq` reads sequences or pgn, got \"cifar10\""), "{err}");
}

/// A [data] table with `synthetic` writes the engine's games as PGN on first use; both forms read
/// them and report the chess metrics from the held-out positions.
#[test]
fn chess_games_written_on_first_use_train_and_are_judged() {
    let root = tempfile::tempdir().unwrap();
    let games = root.path().join("games");
    for form in ["decoder_only", "encoder_decoder"] {
        let mut s = spec(
            "pgn",
            &games,
            &[
                ("form", json!(form)),
                ("epochs", json!(2)),
                ("max_len", json!(24)),
                ("eval_positions", json!(40)),
                ("continue_plies", json!(6)),
            ],
        );
        let mut options = Map::new();
        options.insert("synthetic".into(), json!({ "games": 300, "test": 20, "max_plies": 20, "seed": 2 }));
        s.data.as_mut().unwrap().options = options;
        let (result, records) = run(&s, &TrialContext::cpu());
        result.unwrap();
        let last = &records.last().unwrap().metrics;
        for key in ["legal_move_rate", "next_move_acc"] {
            assert!((0.0..=1.0).contains(&last[key]), "{form}: {key} = {}", last[key]);
        }
        assert!((0.0..=6.0).contains(&last["plies_until_illegal"]), "{form}: {last:?}");
        assert!(last["plies_until_illegal"] >= last["legal_move_rate"]);
    }
    let train = sweep_chess::read_pgn_file(games.join("train.pgn")).unwrap();
    let test = sweep_chess::read_pgn_file(games.join("test.pgn")).unwrap();
    assert_eq!((train.len(), test.len()), (300, 20));
    assert!(train.iter().all(|g| g.moves.len() <= 20));
    let played = sweep_chess::play_games(320, 2, 20);
    assert!(train.iter().chain(&test).zip(&played).all(|(read, game)| read.moves == game.moves));
}

/// The chess-small study's header: a transformer learns which moves are legal long before it
/// learns which move the game goes on with. Reruns its trial of width 64 at lr 3e-3 (the data set
/// is the study's own, written on first use) and checks the gap at every epoch and where the
/// legal-move rate ends.
#[test]
fn small_chess_study_learns_the_rules_long_before_the_moves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/chess-small.toml");
    let file = sweep_spec::SweepFile::read(&path).unwrap();
    let trial = sweep_spec::expand(&file)
        .unwrap()
        .into_iter()
        .find(|t| t.params["d_model"] == json!(64) && t.params["optimizer"]["lr"] == json!(3e-3))
        .expect("the study has the trial of width 64 at lr 3e-3");
    let (result, records) = run(&trial, &TrialContext::cpu());
    result.unwrap();
    let legal = metric(&records, "legal_move_rate");
    let right = metric(&records, "next_move_acc");
    eprintln!("legal_move_rate {legal:?}, next_move_acc {right:?}");
    assert!(legal[0] > 0.7, "after one epoch: {legal:?}");
    assert!(*legal.last().unwrap() > 0.85, "{legal:?}");
    assert!(right.iter().all(|&r| r < 0.15), "{right:?}");
    assert!(legal.iter().zip(&right).all(|(l, r)| l - r > 0.6), "{legal:?} against {right:?}");
}
