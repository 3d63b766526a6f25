//! Standard algebraic notation: resolving SAN text (`Nbd7`, `exd6`, `e8=Q+`, `O-O`) to the one
//! legal move it names, and writing a legal move as SAN with the least disambiguation and the
//! `+`/`#` mark. Resolution is strict about legality and lenient about form, as PGN readers are:
//! over-disambiguation, a missing `=` before the promotion piece, `0-0` for `O-O` and trailing
//! `!`/`?` annotations are accepted.

use cozy_chess::{Board, File, Move, Piece, Rank, Square};

use crate::error::MoveError;
use crate::position::Position;
use crate::uci;

/// The UCI text of the legal move that `san` names in `position`.
pub fn san_to_uci(position: &Position, san: &str) -> Result<String, MoveError> {
    let mv = resolve(&position.board, san)?;
    Ok(uci::format(&position.board, mv))
}

/// The SAN text of the legal UCI move `uci` in `position`.
pub fn uci_to_san(position: &Position, uci: &str) -> Result<String, MoveError> {
    let Some(mv) = uci::parse(&position.board, uci) else {
        return Err(MoveError::Illegal { uci: uci.to_owned(), fen: position.fen() });
    };
    Ok(write(&position.board, mv))
}

/// What the text of a SAN move says, before it is matched against the legal moves.
#[derive(Debug, PartialEq, Eq)]
enum Pattern {
    Castle { short: bool },
    Move { piece: Piece, from_file: Option<File>, from_rank: Option<Rank>, to: Square, promotion: Option<Piece> },
}

/// The legal move that `san` names in `board`.
pub(crate) fn resolve(board: &Board, san: &str) -> Result<Move, MoveError> {
    let pattern = parse(san).ok_or_else(|| MoveError::SanSyntax { san: san.to_owned() })?;
    let illegal = || MoveError::SanIllegal { san: san.to_owned(), fen: board.to_string() };
    let us = board.side_to_move();
    match pattern {
        Pattern::Castle { short } => {
            let rights = board.castle_rights(us);
            let rook_file = if short { rights.short } else { rights.long }.ok_or_else(illegal)?;
            let back_rank = Rank::First.relative_to(us);
            let mv = Move { from: board.king(us), to: Square::new(rook_file, back_rank), promotion: None };
            if board.is_legal(mv) {
                Ok(mv)
            } else {
                Err(illegal())
            }
        }
        // Only castling lands on one's own piece, and cozy-chess writes it as the king taking its
        // rook: without this, `Kh1` would resolve to `O-O`.
        Pattern::Move { to, .. } if board.color_on(to) == Some(us) => Err(illegal()),
        Pattern::Move { piece, from_file, from_rank, to, promotion } => {
            // A pawn move without a file is a push: captures always name the pawn's file.
            let from_file = from_file.or((piece == Piece::Pawn).then(|| to.file()));
            let mut candidates = Vec::new();
            board.generate_moves_for(board.pieces(piece), |moves| {
                let from_matches = from_file.is_none_or(|file| moves.from.file() == file)
                    && from_rank.is_none_or(|rank| moves.from.rank() == rank);
                if from_matches && moves.to.has(to) {
                    candidates.extend(moves.into_iter().filter(|mv| mv.to == to && mv.promotion == promotion));
                }
                false
            });
            match candidates.as_slice() {
                [mv] => Ok(*mv),
                [] => Err(illegal()),
                _ => Err(MoveError::SanAmbiguous {
                    san: san.to_owned(),
                    fen: board.to_string(),
                    candidates: candidates.iter().map(|mv| uci::format(board, *mv)).collect(),
                }),
            }
        }
    }
}

/// Reads the form of a SAN move; `None` when it is not SAN.
fn parse(san: &str) -> Option<Pattern> {
    let body = san.trim_end_matches(['!', '?']).trim_end_matches(['+', '#']);
    match body {
        "O-O" | "0-0" => return Some(Pattern::Castle { short: true }),
        "O-O-O" | "0-0-0" => return Some(Pattern::Castle { short: false }),
        _ => {}
    }
    let mut rest = body.as_bytes();
    let piece = match rest.first()? {
        b'N' => Some(Piece::Knight),
        b'B' => Some(Piece::Bishop),
        b'R' => Some(Piece::Rook),
        b'Q' => Some(Piece::Queen),
        b'K' => Some(Piece::King),
        _ => None,
    };
    if piece.is_some() {
        rest = &rest[1..];
    }
    // A move ends in its target square unless a promotion piece follows it.
    let mut promotion = None;
    if let Some((&last, head)) = rest.split_last() {
        if last.is_ascii_alphabetic() {
            promotion = Some(match last.to_ascii_uppercase() {
                b'N' => Piece::Knight,
                b'B' => Piece::Bishop,
                b'R' => Piece::Rook,
                b'Q' => Piece::Queen,
                _ => return None,
            });
            rest = head.strip_suffix(b"=").unwrap_or(head);
        }
    }
    let [head @ .., file, rank] = rest else { return None };
    let to = Square::new(file_of(*file)?, rank_of(*rank)?);
    let head = head.strip_suffix(b"x").or_else(|| head.strip_suffix(b"-")).unwrap_or(head);
    let (from_file, from_rank) = match *head {
        [] => (None, None),
        [file] if file_of(file).is_some() => (file_of(file), None),
        [rank] => (None, Some(rank_of(rank)?)),
        [file, rank] => (Some(file_of(file)?), Some(rank_of(rank)?)),
        _ => return None,
    };
    let piece = piece.unwrap_or(Piece::Pawn);
    if promotion.is_some() && piece != Piece::Pawn {
        return None;
    }
    Some(Pattern::Move { piece, from_file, from_rank, to, promotion })
}

fn file_of(byte: u8) -> Option<File> {
    File::try_index(usize::from(byte.checked_sub(b'a')?))
}

fn rank_of(byte: u8) -> Option<Rank> {
    Rank::try_index(usize::from(byte.checked_sub(b'1')?))
}

/// The SAN text of `mv`, a legal move in `board`.
pub(crate) fn write(board: &Board, mv: Move) -> String {
    let mut text = String::with_capacity(8);
    if uci::is_castle(board, mv) {
        text.push_str(if mv.to.file() > mv.from.file() { "O-O" } else { "O-O-O" });
    } else {
        let piece = board.piece_on(mv.from).expect("a legal move starts on a piece");
        let capture = board.piece_on(mv.to).is_some() || (piece == Piece::Pawn && mv.from.file() != mv.to.file());
        if piece == Piece::Pawn {
            if capture {
                text.push(char::from(mv.from.file()));
            }
        } else {
            text.push(char::from(piece).to_ascii_uppercase());
            text.push_str(&disambiguation(board, mv, piece));
        }
        if capture {
            text.push('x');
        }
        text.push_str(&mv.to.to_string());
        if let Some(promotion) = mv.promotion {
            text.push('=');
            text.push(char::from(promotion).to_ascii_uppercase());
        }
    }
    let mut after = board.clone();
    after.play_unchecked(mv);
    if !after.checkers().is_empty() {
        text.push(if after.generate_moves(|_| true) { '+' } else { '#' });
    }
    text
}

/// The least that tells `mv` apart from other legal moves of the same kind of piece to the same
/// square: nothing, the file, the rank, or both (in that order of preference).
fn disambiguation(board: &Board, mv: Move, piece: Piece) -> String {
    let mut rivals = Vec::new();
    board.generate_moves_for(board.pieces(piece), |moves| {
        if moves.from != mv.from && moves.to.has(mv.to) {
            rivals.push(moves.from);
        }
        false
    });
    if rivals.is_empty() {
        String::new()
    } else if rivals.iter().all(|from| from.file() != mv.from.file()) {
        char::from(mv.from.file()).to_string()
    } else if rivals.iter().all(|from| from.rank() != mv.from.rank()) {
        char::from(mv.from.rank()).to_string()
    } else {
        mv.from.to_string()
    }
}

#[cfg(test)]
mod tests;
