//! Moves as UCI text (`e2e4`, `e7e8q`; castling as the king's two-square step, `e1g1`) and the
//! conversion to and from cozy-chess, which writes castling as the king taking its own rook
//! (`e1h1`). Only the king-step spelling is accepted, so each legal move has exactly one spelling.

use cozy_chess::{Board, File, Move, Piece, Rank, Square};

/// The legal move that `uci` spells in `board`, or `None` for an illegal move or any text that is
/// not UCI. Never panics, whatever the text.
pub(crate) fn parse(board: &Board, uci: &str) -> Option<Move> {
    let bytes = uci.as_bytes();
    if !(4..=5).contains(&bytes.len()) {
        return None;
    }
    let from = square(bytes[0], bytes[1])?;
    let to = square(bytes[2], bytes[3])?;
    let promotion = match bytes.get(4) {
        None => None,
        Some(b'n') => Some(Piece::Knight),
        Some(b'b') => Some(Piece::Bishop),
        Some(b'r') => Some(Piece::Rook),
        Some(b'q') => Some(Piece::Queen),
        Some(_) => return None,
    };
    let us = board.side_to_move();
    // A move onto one of our own pieces is never legal; refusing it here also refuses the
    // king-takes-rook spelling of castling, which the board would otherwise accept.
    if from == to || board.color_on(to) == Some(us) {
        return None;
    }
    if let Some(castle) = castle_as_king_takes_rook(board, from, to, promotion) {
        return board.is_legal(castle).then_some(castle);
    }
    let mv = Move { from, to, promotion };
    board.is_legal(mv).then_some(mv)
}

/// The UCI text of `mv`, a legal move in `board`.
pub(crate) fn format(board: &Board, mv: Move) -> String {
    let mut to = mv.to;
    if is_castle(board, mv) {
        let file = if mv.to.file() > mv.from.file() { File::G } else { File::C };
        to = Square::new(file, mv.from.rank());
    }
    let mut text = format!("{}{}", mv.from, to);
    if let Some(piece) = mv.promotion {
        text.push(char::from(piece));
    }
    text
}

/// Whether `mv`, legal in `board`, castles (cozy-chess moves the king onto its own rook).
pub(crate) fn is_castle(board: &Board, mv: Move) -> bool {
    board.color_on(mv.to) == Some(board.side_to_move())
}

/// Every legal move of `board`, in cozy-chess's form.
pub(crate) fn legal(board: &Board) -> Vec<Move> {
    let mut moves = Vec::with_capacity(64);
    board.generate_moves(|piece_moves| {
        moves.extend(piece_moves);
        false
    });
    moves
}

fn square(file: u8, rank: u8) -> Option<Square> {
    let file = File::try_index(usize::from(file.checked_sub(b'a')?))?;
    let rank = Rank::try_index(usize::from(rank.checked_sub(b'1')?))?;
    Some(Square::new(file, rank))
}

/// `e1g1`/`e1c1` (and the black ones) as cozy-chess's king-takes-rook move, when the side to move
/// has the king there and the castling right on that side.
fn castle_as_king_takes_rook(board: &Board, from: Square, to: Square, promotion: Option<Piece>) -> Option<Move> {
    let us = board.side_to_move();
    let back_rank = Rank::First.relative_to(us);
    if promotion.is_some() || from != Square::new(File::E, back_rank) || board.king(us) != from {
        return None;
    }
    let rights = board.castle_rights(us);
    let rook_file = match (to.file(), to.rank() == back_rank) {
        (File::G, true) => rights.short?,
        (File::C, true) => rights.long?,
        _ => return None,
    };
    Some(Move { from, to: Square::new(rook_file, back_rank), promotion: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(fen: &str) -> Board {
        crate::Position::from_fen(fen).unwrap().board
    }

    #[test]
    fn castling_converts_both_ways_for_both_colours_and_sides() {
        let white = board("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1");
        let black = board("r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1");
        for (board, uci, rook) in
            [(&white, "e1g1", "h1"), (&white, "e1c1", "a1"), (&black, "e8g8", "h8"), (&black, "e8c8", "a8")]
        {
            let mv = parse(board, uci).unwrap_or_else(|| panic!("{uci} is legal"));
            assert_eq!(mv.to.to_string(), rook);
            assert!(is_castle(board, mv));
            assert_eq!(format(board, mv), uci);
        }
        // The king-takes-rook spelling is not UCI for standard chess.
        for uci in ["e1h1", "e1a1"] {
            assert_eq!(parse(&white, uci), None, "{uci}");
        }
        for uci in ["e8h8", "e8a8"] {
            assert_eq!(parse(&black, uci), None, "{uci}");
        }
    }

    #[test]
    fn promotions_need_their_piece_letter_in_lower_case() {
        let board = board("1n2k3/P7/8/8/8/8/8/4K3 w - - 0 1");
        for uci in ["a7a8q", "a7a8r", "a7a8b", "a7a8n", "a7b8q", "a7b8n"] {
            let mv = parse(&board, uci).unwrap_or_else(|| panic!("{uci} is legal"));
            assert_eq!(format(&board, mv), uci);
        }
        for uci in ["a7a8", "a7a8k", "a7a8p", "a7a8Q", "a7b8", "e1e2q"] {
            assert_eq!(parse(&board, uci), None, "{uci}");
        }
    }

    #[test]
    fn en_passant_is_spelled_as_the_pawn_moves() {
        let board = board("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 2");
        let mv = parse(&board, "e5d6").unwrap();
        assert_eq!(format(&board, mv), "e5d6");
    }
}
