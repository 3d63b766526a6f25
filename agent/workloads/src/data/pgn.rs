//! The `pgn` format of `seq2seq`: a folder holding `train.pgn` and `test.pgn`, games in Portable
//! Game Notation (the reader is `sweep_chess`'s), and synthetic sets of that layout played by
//! `sweep_chess`'s small seeded engine.

use super::DataError;
use serde_json::{Map, Value};
use std::path::Path;

pub const TRAIN_FILE: &str = "train.pgn";
pub const TEST_FILE: &str = "test.pgn";

/// Games in the largest synthetic set, so a typo cannot fill the disk.
pub const MAX_SYNTHETIC_GAMES: usize = 10_000_000;

/// A synthetic set: `train` and `test` games of at most `max_plies` plies; game i of the set
/// depends only on (seed, i), test games following the training games.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChessSynth {
    pub train: usize,
    pub test: usize,
    pub max_plies: usize,
    pub seed: u64,
}

impl Default for ChessSynth {
    fn default() -> ChessSynth {
        ChessSynth { train: 5000, test: 500, max_plies: 80, seed: 0 }
    }
}

impl ChessSynth {
    /// The `synthetic` table of a sweep file's [data]: `{ games, test, max_plies, seed }`, each
    /// optional.
    pub fn from_table(table: &Value) -> Result<ChessSynth, String> {
        let Value::Object(table) = table else {
            return Err(format!("data.synthetic: expected a table {{ games, test, max_plies, seed }}, got {table}"));
        };
        let mut s = ChessSynth::default();
        for (key, value) in table {
            let n = value
                .as_u64()
                .ok_or_else(|| format!("data.synthetic.{key}: expected a non-negative integer, got {value}"))?;
            match key.as_str() {
                "games" => s.train = n as usize,
                "test" => s.test = n as usize,
                "max_plies" => s.max_plies = n as usize,
                "seed" => s.seed = n,
                other => {
                    return Err(format!("data.synthetic.{other}: unknown key; expected games, test, max_plies or seed"))
                }
            }
        }
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.train < 1 || self.test < 1 {
            return Err(format!("games and test: expected at least 1 each, got {} and {}", self.train, self.test));
        }
        if self.train.saturating_add(self.test) > MAX_SYNTHETIC_GAMES {
            return Err(format!("games: at most {MAX_SYNTHETIC_GAMES} in all, got {}", self.train + self.test));
        }
        if !(2..=2000).contains(&self.max_plies) {
            return Err(format!("max_plies: expected 2 to 2000, got {}", self.max_plies));
        }
        Ok(())
    }
}

/// Plays the games of `synth` and writes them to `root/train.pgn` and `root/test.pgn`.
pub fn write_synthetic(root: &Path, synth: &ChessSynth) -> Result<(), DataError> {
    synth.validate().map_err(|m| DataError::invalid(root, m))?;
    std::fs::create_dir_all(root).map_err(|e| DataError::io(root, "create", e))?;
    let games = sweep_chess::play_games(synth.train + synth.test, synth.seed, synth.max_plies);
    let (train, test) = games.split_at(synth.train);
    for (name, games) in [(TRAIN_FILE, train), (TEST_FILE, test)] {
        let path = root.join(name);
        let text = sweep_chess::write_pgn(games).map_err(|e| DataError::invalid(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, "write", e))?;
    }
    Ok(())
}

/// The keys of [data] besides `format` and `path` that the `pgn` format takes.
pub fn synthetic_option(options: &Map<String, Value>) -> Result<Option<ChessSynth>, String> {
    if let Some(other) = options.keys().find(|k| *k != "synthetic") {
        return Err(format!("data.{other}: the pgn format takes no such key (only `synthetic`)"));
    }
    options.get("synthetic").map(ChessSynth::from_table).transpose()
}
