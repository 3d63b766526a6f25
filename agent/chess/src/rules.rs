//! The legality checks that score a model's moves: replay a game, judge one UCI string, list the
//! legal moves, count how far a continuation stays legal. Every move is UCI text; any text at all
//! may be passed, and text that is not a legal move is simply illegal.

use crate::error::MoveError;
use crate::position::Position;
use crate::uci;

/// The position after playing `moves` (UCI) from `start_fen`, or from the standard start position
/// when it is `None`. The error names the first illegal move by its ply, counted from 1.
pub fn position_after<S: AsRef<str>>(start_fen: Option<&str>, moves: &[S]) -> Result<Position, MoveError> {
    let mut position = match start_fen {
        Some(fen) => Position::from_fen(fen)?,
        None => Position::start(),
    };
    for (index, mv) in moves.iter().enumerate() {
        let text = mv.as_ref();
        let Some(parsed) = uci::parse(&position.board, text) else {
            return Err(MoveError::IllegalAt { ply: index + 1, uci: text.to_owned(), fen: position.fen() });
        };
        position.board.play_unchecked(parsed);
    }
    Ok(position)
}

/// Whether `uci` is a legal move in `position`. Castling is the king's two-square step (`e1g1`);
/// promotions carry a lower-case piece letter (`e7e8q`). Any other text, including an empty
/// string, non-ASCII text or control characters, is illegal.
pub fn is_legal(position: &Position, uci: &str) -> bool {
    uci::parse(&position.board, uci).is_some()
}

/// Every legal move in `position` as UCI text, sorted.
pub fn legal_moves(position: &Position) -> Vec<String> {
    let mut moves: Vec<String> =
        uci::legal(&position.board).into_iter().map(|mv| uci::format(&position.board, mv)).collect();
    moves.sort_unstable();
    moves
}

/// The position after the legal move `uci`.
pub fn play(position: &Position, uci: &str) -> Result<Position, MoveError> {
    let Some(mv) = uci::parse(&position.board, uci) else {
        return Err(MoveError::Illegal { uci: uci.to_owned(), fen: position.fen() });
    };
    let mut next = position.clone();
    next.board.play_unchecked(mv);
    Ok(next)
}

/// How many moves of `continuation` are legal, played in order from `position`, before the first
/// illegal one.
pub fn plies_until_illegal<T: AsRef<str>>(position: &Position, continuation: &[T]) -> usize {
    let mut board = position.board.clone();
    let mut count = 0;
    for mv in continuation {
        let Some(parsed) = uci::parse(&board, mv.as_ref()) else { break };
        board.play_unchecked(parsed);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::START_FEN;

    #[test]
    fn garbage_is_illegal_and_never_panics() {
        let positions = [
            Position::start(),
            Position::from_fen("r3k2r/1P6/8/3pP3/8/8/8/R3K2R w KQkq d6 0 2").unwrap(),
            Position::from_fen("r3k2r/8/8/8/8/8/1p6/R3K2R b KQkq - 0 1").unwrap(),
        ];
        let long = "e2e4".repeat(50);
        let garbage = [
            "",
            "e",
            "e2",
            "e2e",
            "e2e4 ",
            " e2e4",
            "E2E4",
            "e2e4q",
            "e2e4\0",
            "e9e4",
            "i2i4",
            "e0e1",
            "e2e2",
            "0000",
            "--",
            "Nf3",
            "O-O",
            "e1h1",
            "b7b8",
            "b7b8k",
            "b7b8p",
            "b7b8Q",
            "\u{1b}[2J\u{1b}[H",
            "\u{1b}]0;title\u{7}",
            "é2é4",
            "e2é",
            "♔e1g1",
            "e2\u{200b}e4",
            "\u{ff45}2\u{ff45}4",
            long.as_str(),
        ];
        assert_eq!(long.len(), 200);
        for position in &positions {
            for text in garbage {
                assert!(!is_legal(position, text), "{text:?} in {}", position.fen());
                assert!(play(position, text).is_err());
            }
        }
    }

    #[test]
    fn legal_moves_of_the_start_position() {
        let moves = legal_moves(&Position::start());
        assert_eq!(moves.len(), 20);
        assert_eq!(moves.first().map(String::as_str), Some("a2a3"));
        assert!(moves.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(moves.iter().all(|mv| is_legal(&Position::start(), mv)));
    }

    #[test]
    fn position_after_names_the_first_illegal_ply() {
        let position = position_after(None, &["e2e4", "e7e5", "g1f3"]).unwrap();
        assert_eq!(position.fen(), "rnbqkbnr/pppp1ppp/8/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R b KQkq - 1 2");
        let error = position_after(Some(START_FEN), &["e2e4", "e7e5", "e4e5"]).unwrap_err();
        assert!(matches!(&error, MoveError::IllegalAt { ply: 3, uci, .. } if uci == "e4e5"), "{error}");
        assert!(error.to_string().contains("move 3 (\"e4e5\")"), "{error}");
        assert!(matches!(position_after::<&str>(Some("bad fen"), &[]), Err(MoveError::InvalidFen { .. })));
    }

    #[test]
    fn plies_until_illegal_counts_the_legal_prefix() {
        let start = position_after(None, &["e2e4", "e7e5"]).unwrap();
        assert_eq!(plies_until_illegal(&start, &["g1f3", "b8c6", "f1b5"]), 3);
        assert_eq!(plies_until_illegal(&start, &["g1f3", "b8c6", "e1g1", "g8f6"]), 2);
        assert_eq!(plies_until_illegal(&start, &["e7e5"]), 0);
        assert_eq!(plies_until_illegal::<&str>(&start, &[]), 0);
        assert_eq!(plies_until_illegal(&Position::start(), &["e2e4", "garbage", "e7e5"]), 1);
        // Legal moves after an illegal one are not counted.
        assert_eq!(plies_until_illegal(&start, &["d1h5", "d1h5", "g8f6"]), 1);
        // The position itself is left as it was.
        assert_eq!(start.fen(), position_after(None, &["e2e4", "e7e5"]).unwrap().fen());
    }
}
