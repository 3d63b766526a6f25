//! Chess for `seq2seq`: PGN games read into sequences of UCI move tokens over a fixed vocabulary
//! (every move string that can ever be legal), and the held-out positions whose predicted moves
//! the rules judge. From each position the model reads the moves so far and continues greedily:
//! `legal_move_rate` is how often its first move is legal there, `next_move_acc` how often it is
//! the move the game went on with, `plies_until_illegal` how many of its moves in a row are legal.

use super::batches::{ids, padded, Pad, SequenceData};
use crate::data::pgn;
use crate::data::sequences::{Corpus, Sequence, Vocab};
use crate::error::TrialError;
use crate::harness::{autocast, EvalOn};
use crate::models::transformer::decode::{generate, Prompt, Strategy};
use crate::models::transformer::{tokens, Form, Transformer};
use crate::rng::{mix, Rng, Stream};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Held-out positions decoded in one batch.
const PROMPT_BATCH: usize = 64;

/// A test game cut at one ply: the game's start, the moves played so far, the move played next.
/// The decoder-only form reads a game as a language model (`<bos>` and the moves so far); the
/// encoder reads the moves so far as its source.
struct HeldOutPosition {
    start_fen: Option<String>,
    moves: Vec<String>,
    next: String,
    /// The moves so far as the model reads them.
    source: Vec<u32>,
}

pub struct HeldOut {
    positions: Vec<HeldOutPosition>,
    vocab: Vocab,
    form: Form,
    continue_plies: i64,
}

/// The vocabulary of every game: the special tokens, then every UCI move string in a fixed order.
fn vocab() -> Vocab {
    Vocab::new(sweep_chess::all_uci_moves())
}

/// Reads `root/train.pgn` and `root/test.pgn` ([`pgn`]). Games of fewer than two plies are left out (they
/// have nothing to predict from), and so are their counts in the log line.
pub fn load(root: &Path) -> Result<(Corpus, Vec<sweep_chess::Game>), TrialError> {
    let vocab = vocab();
    let read = |name: &str| -> Result<Vec<sweep_chess::Game>, TrialError> {
        let games = sweep_chess::read_pgn_file(root.join(name)).map_err(|e| TrialError::Other(anyhow::anyhow!(e)))?;
        Ok(games.into_iter().filter(|g| g.moves.len() >= 2).collect())
    };
    let (train_games, test_games) = (read(pgn::TRAIN_FILE)?, read(pgn::TEST_FILE)?);
    for (name, games) in [(pgn::TRAIN_FILE, &train_games), (pgn::TEST_FILE, &test_games)] {
        if games.is_empty() {
            return Err(TrialError::bad_config(format!(
                "data: {} holds no game of two plies or more",
                root.join(name).display()
            )));
        }
    }
    let sequences = |games: &[sweep_chess::Game]| -> Vec<Sequence> {
        games.iter().map(|g| Sequence { tokens: g.moves.iter().map(|m| vocab.id(m)).collect(), split: None }).collect()
    };
    let corpus = Corpus { train: sequences(&train_games), test: sequences(&test_games), vocab };
    Ok((corpus, test_games))
}

impl HeldOut {
    /// `count` positions of the test games: position i is game i (cycling when there are fewer
    /// games) cut at a ply drawn from the seed.
    pub fn new(
        games: &[sweep_chess::Game],
        vocab: Vocab,
        count: usize,
        data: &SequenceData,
        continue_plies: i64,
    ) -> HeldOut {
        let positions = (0..count)
            .map(|i| {
                let game = &games[i % games.len()];
                let cut = 1
                    + Rng::new(mix(data.seed, i as u64), Stream::SplitPoints).below(game.moves.len() as u64 - 1)
                        as usize;
                let moves = game.moves[..cut].to_vec();
                let ids: Vec<u32> = moves.iter().map(|m| vocab.id(m)).collect();
                let source = match data.form {
                    Form::DecoderOnly => data.history(&ids),
                    Form::EncoderDecoder => data.source(&ids),
                }
                .to_vec();
                HeldOutPosition {
                    start_fen: game.start_fen().map(str::to_string),
                    moves,
                    next: game.moves[cut].clone(),
                    source,
                }
            })
            .collect();
        HeldOut { positions, vocab, form: data.form, continue_plies }
    }

    /// Decodes every position greedily and judges the moves.
    pub fn metrics(&self, model: &Transformer, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        let mut verdicts = Vec::with_capacity(self.positions.len());
        for chunk in self.positions.chunks(PROMPT_BATCH) {
            let generated = self.continue_games(model, chunk, on)?;
            verdicts.extend(judge(chunk, &generated)?);
        }
        let n = verdicts.len().max(1) as f64;
        let share = |f: &dyn Fn(&Verdict) -> usize| verdicts.iter().map(f).sum::<usize>() as f64 / n;
        Ok(BTreeMap::from([
            ("legal_move_rate".to_string(), share(&|v| v.legal as usize)),
            ("next_move_acc".to_string(), share(&|v| v.right as usize)),
            ("plies_until_illegal".to_string(), share(&|v| v.plies)),
        ]))
    }

    /// The model's continuation of each position, as token strings up to `<eos>`.
    fn continue_games(
        &self,
        model: &Transformer,
        chunk: &[HeldOutPosition],
        on: EvalOn,
    ) -> Result<Vec<Vec<String>>, String> {
        let longest = |rows: &[Vec<i64>]| rows.iter().map(Vec::len).max().unwrap_or(1);
        let (source, prefix) = match self.form {
            Form::DecoderOnly => {
                let prompts: Vec<Vec<i64>> =
                    chunk.iter().map(|p| [vec![tokens::BOS], ids(&p.source)].concat()).collect();
                (None, padded(prompts.iter().map(Vec::as_slice), longest(&prompts), Pad::Left))
            }
            Form::EncoderDecoder => {
                let sources: Vec<Vec<i64>> = chunk.iter().map(|p| ids(&p.source)).collect();
                let bos = Tensor::full([chunk.len() as i64, 1], tokens::BOS, (Kind::Int64, tch::Device::Cpu));
                (Some(padded(sources.iter().map(Vec::as_slice), longest(&sources), Pad::Right)), bos)
            }
        };
        let (source, prefix) = (source.map(|s| s.to_device(on.device)), prefix.to_device(on.device));
        let room = model.spec().max_len - prefix.size()[1];
        let max_new = self.continue_plies.min(room);
        if max_new < 1 {
            return Err(format!(
                "held-out positions: a prompt of {} tokens leaves no room in max_len",
                prefix.size()[1]
            ));
        }
        let prompt = Prompt { source: source.as_ref(), prefix: &prefix };
        let out = autocast(on.precision, on.device, || generate(model, &prompt, max_new, Strategy::Greedy, true))?;
        let out = Vec::<Vec<i64>>::try_from(out.to_device(tch::Device::Cpu)).map_err(|e| e.to_string())?;
        Ok(out
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .take_while(|&t| t != tokens::EOS && t != tokens::PAD)
                    .map(|t| self.vocab.word(t).to_string())
                    .collect()
            })
            .collect())
    }
}

/// What the rules say of a model's continuation of one held-out position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    /// Its first move is legal there.
    legal: bool,
    /// Its first move is the one the game went on with.
    right: bool,
    /// Its moves in a row that are legal, from the first.
    plies: usize,
}

/// Judges each position's continuation (moves as token strings, up to `<eos>`).
fn judge(positions: &[HeldOutPosition], generated: &[Vec<String>]) -> Result<Vec<Verdict>, String> {
    positions
        .iter()
        .zip(generated)
        .map(|(position, moves)| {
            let start = sweep_chess::position_after(position.start_fen.as_deref(), &position.moves)
                .map_err(|e| format!("held-out position: {e}"))?;
            let first = moves.first().map(String::as_str).unwrap_or("");
            Ok(Verdict {
                legal: sweep_chess::is_legal(&start, first),
                right: first == position.next,
                plies: sweep_chess::plies_until_illegal(&start, moves),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn data() -> SequenceData {
        SequenceData {
            form: Form::DecoderOnly,
            max_len: 64,
            train: Vec::new(),
            test: Vec::new(),
            batch_size: 8,
            seed: 4,
        }
    }

    /// Moves a model might answer with in each held-out position: the move the game went on with,
    /// a legal move of the side not to move, moves from the whole vocabulary, an empty answer and
    /// text that is no move at all, each judged by the rules here and by python-chess.
    #[test]
    fn legal_move_rate_agrees_with_python_chess() {
        let games = sweep_chess::play_games(40, 9, 60);
        let held_out = HeldOut::new(&games, vocab(), 120, &data(), 5);
        let vocab = sweep_chess::all_uci_moves();
        let mut positions = Vec::new();
        let mut answers = Vec::new();
        for (i, p) in held_out.positions.iter().enumerate() {
            let fen = sweep_chess::position_after(p.start_fen.as_deref(), &p.moves).unwrap().fen();
            let mut moves = p.moves.clone();
            moves.pop();
            let before = sweep_chess::position_after(p.start_fen.as_deref(), &moves).unwrap();
            let other_side = sweep_chess::legal_moves(&before);
            let answer = match i % 5 {
                0 => p.next.clone(),
                1 => other_side[i % other_side.len()].clone(),
                2 | 3 => vocab[(i * 97) % vocab.len()].clone(),
                _ if i % 10 == 4 => String::new(),
                _ => "\u{1b}[2Je2e4".to_string(),
            };
            positions.push((fen, answer.clone()));
            answers.push(vec![answer]);
        }
        let verdicts = judge(&held_out.positions, &answers).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("candidates.txt");
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        // An empty answer goes to python-chess as a NUL byte (a line needs one byte at least); no
        // move parser takes either for a move.
        let lines: Vec<String> = positions
            .iter()
            .map(|(fen, m)| format!("{fen}\t{}", if m.is_empty() { "00".into() } else { hex(m) }))
            .collect();
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chess/tests/oracle/python_chess_oracle.py");
        assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
        let out = Command::new(&python).arg(&oracle).arg("judge").arg(&input).output().unwrap();
        assert!(out.status.success(), "python-chess failed: {}", String::from_utf8_lossy(&out.stderr));
        let theirs: Vec<bool> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("VERDICTS "))
            .map(|v| v == "1")
            .collect();
        let ours: Vec<bool> = verdicts.iter().map(|v| v.legal).collect();
        assert_eq!(ours, theirs, "the rules here and python-chess judge the answers differently");
        let legal = ours.iter().filter(|&&l| l).count();
        assert!(legal >= 24 && legal < ours.len() - 40, "{legal} of {} legal: too one-sided to test", ours.len());
        assert!(verdicts.iter().step_by(5).all(|v| v.right && v.legal && v.plies == 1));
    }
}
