//! [`Position`]: a standard-chess position (what a FEN holds) over cozy-chess's board, so that the
//! rules crate stays out of this crate's public API. Chess960 is out of scope: castling rights must
//! belong to a king on the e-file and rooks on the a- and h-files.

use cozy_chess::{Board, Color, File, GameStatus, Piece, Rank, Square};

use crate::error::MoveError;

/// The FEN of the standard start position.
pub const START_FEN: &str = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";

/// Whose move it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    White,
    Black,
}

/// Whether the side to move can move, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The side to move has at least one legal move.
    Ongoing,
    /// The side to move is in check and has no legal move.
    Checkmate,
    /// The side to move is not in check and has no legal move.
    Stalemate,
}

/// A standard-chess position: pieces, side to move, castling rights, en-passant file and the two
/// move counters. It keeps no history, so it knows nothing of repetitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub(crate) board: Board,
}

impl Default for Position {
    fn default() -> Self {
        Self::start()
    }
}

impl Position {
    /// The standard start position.
    pub fn start() -> Self {
        Self { board: Board::startpos() }
    }

    /// Reads a FEN. Runs of spaces are accepted, and so is a FEN without its two move counters
    /// (they default to `0 1`). A halfmove clock above 100 is read as 100: past that point the
    /// fifty-move rule applies and a larger count changes nothing.
    pub fn from_fen(fen: &str) -> Result<Self, MoveError> {
        let invalid = |reason: &str| MoveError::InvalidFen { fen: fen.to_owned(), reason: reason.to_owned() };
        let mut fields: Vec<&str> = fen.split_whitespace().collect();
        match fields.len() {
            4 => fields.extend(["0", "1"]),
            6 => {}
            _ => return Err(invalid("expected 6 fields (or 4 without the move counters)")),
        }
        if fields[0].split('/').count() != 8 {
            return Err(invalid("the board needs 8 ranks separated by '/'"));
        }
        let clock = match fields[4].parse::<u64>() {
            Ok(clock) if clock > 100 => "100".to_owned(),
            _ => fields[4].to_owned(),
        };
        let normalized = format!("{} {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], clock, fields[5]);
        let board = Board::from_fen(&normalized, false).map_err(|error| invalid(&error.to_string().to_lowercase()))?;
        for color in [Color::White, Color::Black] {
            let rights = board.castle_rights(color);
            let back_rank = Rank::First.relative_to(color);
            let standard = (rights.short.is_none() && rights.long.is_none())
                || (board.king(color) == Square::new(File::E, back_rank)
                    && rights.short.is_none_or(|file| file == File::H)
                    && rights.long.is_none_or(|file| file == File::A));
            if !standard {
                return Err(invalid("castling rights need the king on the e-file and the rook on the a- or h-file"));
            }
        }
        Ok(Self { board })
    }

    /// The position as a FEN. The en-passant square is written after every double pawn push,
    /// whether or not a capture is possible.
    pub fn fen(&self) -> String {
        self.board.to_string()
    }

    /// Whose move it is.
    pub fn side_to_move(&self) -> Side {
        match self.board.side_to_move() {
            Color::White => Side::White,
            Color::Black => Side::Black,
        }
    }

    /// Whether the side to move is in check.
    pub fn is_check(&self) -> bool {
        !self.board.checkers().is_empty()
    }

    /// Whether the side to move can move; the fifty-move rule is not applied here.
    pub fn status(&self) -> Status {
        match self.board.status() {
            GameStatus::Won => Status::Checkmate,
            GameStatus::Drawn if !self.board.generate_moves(|_| true) => Status::Stalemate,
            GameStatus::Drawn | GameStatus::Ongoing => Status::Ongoing,
        }
    }

    /// Half-moves since the last capture or pawn move (capped at 100).
    pub fn halfmove_clock(&self) -> u32 {
        u32::from(self.board.halfmove_clock())
    }

    /// The number of the full move about to be played, starting at 1.
    pub fn fullmove_number(&self) -> u32 {
        u32::from(self.board.fullmove_number())
    }

    /// Whether neither side has mating material: kings alone, or kings and a single knight or bishop.
    pub fn is_insufficient_material(&self) -> bool {
        let board = &self.board;
        let heavy = board.pieces(Piece::Pawn) | board.pieces(Piece::Rook) | board.pieces(Piece::Queen);
        let minors = board.pieces(Piece::Knight) | board.pieces(Piece::Bishop);
        heavy.is_empty() && minors.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_position_round_trips_through_fen() {
        assert_eq!(Position::start().fen(), START_FEN);
        assert_eq!(Position::from_fen(START_FEN).unwrap(), Position::start());
        assert_eq!(Position::start().side_to_move(), Side::White);
        assert_eq!(Position::start().status(), Status::Ongoing);
    }

    #[test]
    fn fen_without_counters_and_with_a_large_clock_is_read() {
        let four = Position::from_fen("4k3/8/8/8/8/8/8/4K3  b -  -").unwrap();
        assert_eq!((four.halfmove_clock(), four.fullmove_number()), (0, 1));
        assert_eq!(four.side_to_move(), Side::Black);
        let late = Position::from_fen("4k3/8/8/8/8/8/8/4K3 w - - 150 90").unwrap();
        assert_eq!(late.halfmove_clock(), 100);
        assert!(late.is_insufficient_material());
    }

    #[test]
    fn invalid_fens_are_refused_with_the_fen_named() {
        for fen in [
            "",
            "garbage",
            "k7/K7 w - - 0 1",
            "8/8/8/8/8/8/8/8 w - - 0 1",
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR x KQkq - 0 1",
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1 extra",
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq e3 0 1",
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 0",
            "999999999/8/8/8/8/8/8/8 w - - 0 1",
            // Chess960 castling rights: king on f1 with rights to the h1 rook.
            "4k3/8/8/8/8/8/8/5K1R w K - 0 1",
        ] {
            let error = Position::from_fen(fen).unwrap_err();
            assert!(matches!(&error, MoveError::InvalidFen { fen: named, .. } if named == fen), "{error}");
        }
    }

    #[test]
    fn checkmate_and_stalemate_are_told_apart() {
        let mate = Position::from_fen("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1").unwrap();
        assert_eq!(mate.status(), Status::Checkmate);
        assert!(mate.is_check());
        let stalemate = Position::from_fen("7k/8/6QK/8/8/8/8/8 b - - 0 1").unwrap();
        assert_eq!(stalemate.status(), Status::Stalemate);
        assert!(!stalemate.is_check());
    }
}
