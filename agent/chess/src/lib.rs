//! Chess for the move-sequence study, where a transformer learns games as sequences of UCI move
//! tokens: the rules (through cozy-chess, MIT), SAN, a bounded PGN reader and a writer, a small
//! seeded engine that makes training games, and the legality checks that score a model's moves.
//!
//! Moves are UCI text everywhere in this API: `e2e4`, `e7e8q`, and castling as the king's
//! two-square step, `e1g1`. Only standard chess is supported (no Chess960).
//!
//! ```
//! use sweep_chess::{is_legal, plies_until_illegal, position_after, read_pgn};
//!
//! let games = read_pgn("1. e4 {a comment} e5 (1... c5) 2. Nf3 *").unwrap();
//! assert_eq!(games[0].moves, ["e2e4", "e7e5", "g1f3"]);
//! let position = position_after(None, &games[0].moves).unwrap();
//! assert!(is_legal(&position, "b8c6"));
//! assert!(!is_legal(&position, "e8g8"));
//! // A model's continuation, scored by how long it stays legal.
//! assert_eq!(plies_until_illegal(&position, &["b8c6", "f1b5", "b5b5"]), 2);
//! ```

mod engine;
mod error;
mod game;
pub mod pgn;
mod position;
mod rng;
mod rules;
mod san;
mod uci;
mod vocab;

pub use engine::{play_game, play_games, play_games_with, EngineParams, DEFAULT_EPSILON};
pub use error::{MoveError, PgnError};
pub use game::{Game, GameResult};
pub use pgn::{read_pgn, read_pgn_file, read_pgn_with_limits, write_pgn, PgnLimits};
pub use position::{Position, Side, Status, START_FEN};
pub use rules::{is_legal, legal_moves, play, plies_until_illegal, position_after};
pub use san::{san_to_uci, uci_to_san};
pub use vocab::{all_uci_moves, UCI_MOVE_COUNT};
