//! The vocabulary of UCI moves: every move string that can be legal in some position of standard
//! chess, in one fixed order, so a model can use the list's indices as its move tokens.

use cozy_chess::{Rank, Square};

/// How many UCI move strings [`all_uci_moves`] lists: 1,792 from-to pairs that a queen or knight
/// can make (every other piece's move is one of them, castling included) and 176 promotions.
pub const UCI_MOVE_COUNT: usize = 1_968;

/// Every UCI move string that can be legal, in a fixed order: by from-square, then to-square
/// (squares in the order a1, b1, …, h1, a2, …, h8), and the plain move before its promotions to
/// queen, rook, bishop and knight. The order never changes between versions of this crate.
pub fn all_uci_moves() -> Vec<String> {
    let mut moves = Vec::with_capacity(UCI_MOVE_COUNT);
    for from in Square::ALL {
        for to in Square::ALL {
            let files = (to.file() as i32 - from.file() as i32).abs();
            let ranks = (to.rank() as i32 - from.rank() as i32).abs();
            let queen = (files == 0) != (ranks == 0) || (files == ranks && files > 0);
            let knight = (files == 1 && ranks == 2) || (files == 2 && ranks == 1);
            if queen || knight {
                moves.push(format!("{from}{to}"));
            }
            // A pawn promotes by stepping to the last rank straight ahead or one file aside.
            let white_promotes = from.rank() == Rank::Seventh && to.rank() == Rank::Eighth;
            let black_promotes = from.rank() == Rank::Second && to.rank() == Rank::First;
            if (white_promotes || black_promotes) && files <= 1 {
                moves.extend(['q', 'r', 'b', 'n'].map(|piece| format!("{from}{to}{piece}")));
            }
        }
    }
    debug_assert_eq!(moves.len(), UCI_MOVE_COUNT);
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{legal_moves, play, play_games, Position};
    use std::collections::HashSet;

    #[test]
    fn the_vocabulary_has_every_move_once_in_its_order() {
        let moves = all_uci_moves();
        assert_eq!(moves.len(), UCI_MOVE_COUNT);
        assert_eq!(moves.iter().collect::<HashSet<_>>().len(), UCI_MOVE_COUNT);
        assert_eq!(&moves[..3], ["a1b1", "a1c1", "a1d1"]);
        assert_eq!(moves.last().map(String::as_str), Some("h8g8"));
        let promotions: Vec<&String> = moves.iter().filter(|mv| mv.len() == 5).collect();
        assert_eq!(promotions.len(), 176);
        let e7 = moves.iter().position(|mv| mv == "e7e8").unwrap();
        assert_eq!(&moves[e7..e7 + 5], ["e7e8", "e7e8q", "e7e8r", "e7e8b", "e7e8n"]);
        for castle in ["e1g1", "e1c1", "e8g8", "e8c8", "b2a1n", "g2h1q"] {
            assert!(moves.iter().any(|mv| mv == castle), "{castle}");
        }
        assert!(!moves.iter().any(|mv| mv == "a1b3q" || mv == "a1b4" || mv == "e2e2" || mv == "e2e3q"));
    }

    #[test]
    fn every_legal_move_of_engine_games_is_in_the_vocabulary() {
        let vocabulary: HashSet<String> = all_uci_moves().into_iter().collect();
        let mut seen = 0;
        for game in play_games(20, 5, 200) {
            let mut position = Position::start();
            for played in &game.moves {
                for mv in legal_moves(&position) {
                    assert!(vocabulary.contains(&mv), "{mv} in {}", position.fen());
                    seen += 1;
                }
                position = play(&position, played).unwrap();
            }
        }
        let promotions = Position::from_fen("1n2k3/P7/8/8/8/8/6p1/4K2R w K - 0 1").unwrap();
        assert!(legal_moves(&promotions).iter().all(|mv| vocabulary.contains(mv)));
        assert!(seen > 10_000);
    }
}
