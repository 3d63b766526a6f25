//! The crate's two error types: [`MoveError`] for a position or a move that the rules refuse, and
//! [`PgnError`] for PGN text, which says where in the text (game, ply, token) the problem sits.
//! Inputs are quoted with `{:?}` so that a control character in a move cannot reach a terminal raw.

use std::path::PathBuf;

/// A position or move that the rules of chess refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// The FEN text does not describe a legal standard-chess position.
    #[error("invalid FEN {fen:?}: {reason}")]
    InvalidFen { fen: String, reason: String },
    /// A UCI move that is not legal in the position (or is not UCI at all).
    #[error("{uci:?} is not a legal move in {fen}")]
    Illegal { uci: String, fen: String },
    /// A UCI move in a sequence that is not legal where it is played; `ply` counts from 1.
    #[error("move {ply} ({uci:?}) is not a legal move in {fen}")]
    IllegalAt { ply: usize, uci: String, fen: String },
    /// Text that is not a move in standard algebraic notation.
    #[error("{san:?} is not a move in standard algebraic notation")]
    SanSyntax { san: String },
    /// A well-formed SAN move that no legal move matches.
    #[error("{san:?} is not a legal move in {fen}")]
    SanIllegal { san: String, fen: String },
    /// A SAN move that more than one legal move matches.
    #[error("{san:?} is ambiguous in {fen}: it could be any of {candidates:?}")]
    SanAmbiguous { san: String, fen: String, candidates: Vec<String> },
}

/// A PGN text the reader refuses, or a game the writer cannot write.
///
/// Games are numbered from 1 in the order they appear; plies count the main line's half-moves from
/// 1 within a game. Errors found between moves say how many plies were read before them.
#[derive(Debug, thiserror::Error)]
pub enum PgnError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error inside a PGN file, with the file named.
    #[error("{path}: {error}")]
    InFile { path: PathBuf, error: Box<PgnError> },
    /// The text holds more games than the limit allows.
    #[error("game {game}: more than {limit} games in one PGN text")]
    TooManyGames { game: usize, limit: usize },
    /// A game's main line is longer than the limit allows.
    #[error("game {game}, ply {ply}: more than {limit} plies in one game (the move is {token:?})")]
    TooManyPlies { game: usize, ply: usize, token: String, limit: usize },
    /// A tag name or value is longer than the limit allows.
    #[error("game {game}: tag {what} {text:?}… is more than {limit} bytes")]
    TagTooLong { game: usize, what: &'static str, text: String, limit: usize },
    /// A movetext token (a move, a move number, a NAG) is longer than the limit allows.
    #[error("game {game}, after {plies} plies: token {token:?}… is more than {limit} bytes")]
    TokenTooLong { game: usize, plies: usize, token: String, limit: usize },
    /// Variations are nested deeper than the limit allows.
    #[error("game {game}, after {plies} plies: variations nested more than {limit} deep")]
    VariationTooDeep { game: usize, plies: usize, limit: usize },
    /// A main-line move that is not legal, ambiguous, or not SAN at all.
    #[error("game {game}, ply {ply}: {error}")]
    Move { game: usize, ply: usize, error: MoveError },
    /// The game's FEN tag does not give a usable start position.
    #[error("game {game}: FEN tag: {error}")]
    Fen { game: usize, error: MoveError },
    /// Text that is not PGN: a stray character, an unclosed comment, string or variation, a game
    /// without a result.
    #[error("game {game}, after {plies} plies: {problem}")]
    Syntax { game: usize, plies: usize, problem: String },
}

/// The first `max` bytes of `text` (cut at a character boundary), for quoting a long input in an
/// error without copying all of it.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
