//! [`Game`]: one game as the study sees it, its PGN tag pairs, its main line as UCI moves and its
//! result. The PGN reader makes games, the engine plays them, the writer turns them back into PGN.

use std::fmt;

use crate::error::MoveError;
use crate::position::Position;

/// How a game ended, as PGN writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GameResult {
    /// `1-0`
    WhiteWins,
    /// `0-1`
    BlackWins,
    /// `1/2-1/2`
    Draw,
    /// `*`: unfinished, abandoned or unknown.
    Unknown,
}

impl GameResult {
    /// The PGN text of the result.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhiteWins => "1-0",
            Self::BlackWins => "0-1",
            Self::Draw => "1/2-1/2",
            Self::Unknown => "*",
        }
    }

    /// The result that `text` spells in PGN, if any.
    pub fn from_pgn(text: &str) -> Option<Self> {
        match text {
            "1-0" => Some(Self::WhiteWins),
            "0-1" => Some(Self::BlackWins),
            "1/2-1/2" => Some(Self::Draw),
            "*" => Some(Self::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for GameResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One game: its tag pairs in the order they were read, its main line as UCI moves, its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    /// Tag pairs (`[Event "..."]`), names and values as written, escapes removed.
    pub tags: Vec<(String, String)>,
    /// The main line, one UCI move (`e2e4`, `e7e8q`, `e1g1`) per ply.
    pub moves: Vec<String>,
    /// The result that closes the movetext (which wins over a differing `Result` tag).
    pub result: GameResult,
}

impl Game {
    /// The value of the first tag called `name` (names match exactly, as in PGN).
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The FEN the game starts from: the `FEN` tag, unless a `SetUp` tag says `0`.
    pub fn start_fen(&self) -> Option<&str> {
        match self.tag("SetUp") {
            Some("0") => None,
            _ => self.tag("FEN"),
        }
    }

    /// The position the game starts from: [`Game::start_fen`], or the standard start position.
    pub fn start_position(&self) -> Result<Position, MoveError> {
        self.start_fen().map_or_else(|| Ok(Position::start()), Position::from_fen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_spell_as_pgn_does() {
        for result in [GameResult::WhiteWins, GameResult::BlackWins, GameResult::Draw, GameResult::Unknown] {
            assert_eq!(GameResult::from_pgn(result.as_str()), Some(result));
            assert_eq!(result.to_string(), result.as_str());
        }
        assert_eq!(GameResult::from_pgn("1/2"), None);
    }

    #[test]
    fn the_fen_tag_counts_unless_setup_says_0() {
        let fen = "4k3/8/8/8/8/8/8/4K2R w K - 0 1";
        let mut game = Game {
            tags: vec![("SetUp".into(), "1".into()), ("FEN".into(), fen.into())],
            moves: Vec::new(),
            result: GameResult::Unknown,
        };
        assert_eq!(game.start_fen(), Some(fen));
        assert_eq!(game.start_position().unwrap().fen(), fen);
        game.tags[0].1 = "0".into();
        assert_eq!(game.start_position().unwrap(), Position::start());
        game.tags.clear();
        assert_eq!(game.start_fen(), None);
    }
}
