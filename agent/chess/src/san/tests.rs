//! SAN resolution and writing on hand-written positions.

use super::*;
use crate::rules::position_after;

fn at(fen: &str) -> Position {
    Position::from_fen(fen).unwrap()
}

/// Reads `san` to UCI and writes the UCI move back as SAN: `canonical` is the SAN the writer gives.
fn check(position: &Position, san: &str, uci: &str, canonical: &str) {
    assert_eq!(san_to_uci(position, san).unwrap(), uci, "{san} in {}", position.fen());
    assert_eq!(uci_to_san(position, uci).unwrap(), canonical, "{uci} in {}", position.fen());
}

#[test]
fn castling_both_sides_both_colours() {
    let white = at("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1");
    check(&white, "O-O", "e1g1", "O-O");
    check(&white, "O-O-O", "e1c1", "O-O-O");
    check(&white, "0-0", "e1g1", "O-O");
    check(&white, "0-0-0", "e1c1", "O-O-O");
    let black = at("r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1");
    check(&black, "O-O", "e8g8", "O-O");
    check(&black, "O-O-O", "e8c8", "O-O-O");
    // A castle that gives check carries the mark.
    let checking = at("5k2/8/8/8/8/8/8/4K2R w K - 0 1");
    check(&checking, "O-O+", "e1g1", "O-O+");
}

#[test]
fn castling_through_check_or_without_the_right_is_illegal() {
    // The black rook on f8 covers f1: the short castle crosses it, the long one does not.
    let position = at("4kr2/8/8/8/8/8/8/R3K2R w KQ - 0 1");
    assert!(matches!(san_to_uci(&position, "O-O"), Err(MoveError::SanIllegal { .. })));
    check(&position, "O-O-O", "e1c1", "O-O-O");
    let no_rights = at("r3k2r/8/8/8/8/8/8/R3K2R w Qkq - 0 1");
    assert!(matches!(san_to_uci(&no_rights, "O-O"), Err(MoveError::SanIllegal { .. })));
    // The king stepping onto its own rook is not a way to write castling.
    let white = at("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1");
    assert!(matches!(san_to_uci(&white, "Kh1"), Err(MoveError::SanIllegal { .. })));
    assert!(matches!(san_to_uci(&white, "Kg1"), Err(MoveError::SanIllegal { .. })));
}

#[test]
fn en_passant_captures_and_the_file_rule_for_pawns() {
    let position = at("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 2");
    check(&position, "exd6", "e5d6", "exd6");
    // A pawn move without a file is a push, so `d6` cannot mean the capture.
    assert!(matches!(san_to_uci(&position, "d6"), Err(MoveError::SanIllegal { .. })));
    let checking = at("8/2k5/8/3pP3/8/8/8/4K3 w - d6 0 2");
    check(&checking, "exd6+", "e5d6", "exd6+");
    // Black captures en passant too.
    let black = position_after(None, &["e2e4", "a7a6", "e4e5", "d7d5"]).unwrap();
    check(&black, "exd6", "e5d6", "exd6");
}

#[test]
fn promotions_including_under_promotion_with_capture() {
    let position = at("1n2k3/P7/8/8/8/8/8/4K3 w - - 0 1");
    check(&position, "a8=Q", "a7a8q", "a8=Q");
    check(&position, "a8Q", "a7a8q", "a8=Q");
    check(&position, "axb8=Q+", "a7b8q", "axb8=Q+");
    check(&position, "axb8=R+", "a7b8r", "axb8=R+");
    check(&position, "axb8=B", "a7b8b", "axb8=B");
    check(&position, "axb8=N", "a7b8n", "axb8=N");
    check(&position, "axb8N", "a7b8n", "axb8=N");
    // A promotion needs its piece, and only a pawn promotes.
    assert!(matches!(san_to_uci(&position, "a8"), Err(MoveError::SanIllegal { .. })));
    assert!(matches!(san_to_uci(&position, "a8=K"), Err(MoveError::SanSyntax { .. })));
    let black = at("4k3/8/8/8/8/8/6p1/4K2R b K - 0 1");
    check(&black, "gxh1=N", "g2h1n", "gxh1=N");
    check(&black, "gxh1=Q+", "g2h1q", "gxh1=Q+");
    check(&black, "g1=R+", "g2g1r", "g1=R+");
}

#[test]
fn disambiguation_by_file_rank_and_square() {
    let knights = at("4k3/8/8/8/8/8/8/1N2KN2 w - - 0 1");
    check(&knights, "Nbd2", "b1d2", "Nbd2");
    check(&knights, "Nfd2", "f1d2", "Nfd2");
    check(&knights, "Nb1d2", "b1d2", "Nbd2");
    check(&knights, "Nc3", "b1c3", "Nc3");
    check(&knights, "Nb1c3", "b1c3", "Nc3");
    let rooks = at("4k3/8/8/R7/8/8/8/R3K3 w - - 0 1");
    check(&rooks, "R1a3", "a1a3", "R1a3");
    check(&rooks, "R5a3", "a5a3", "R5a3");
    let queens = at("8/8/k7/8/4Q2Q/8/8/K6Q w - - 0 1");
    check(&queens, "Qh4e1", "h4e1", "Qh4e1");
    check(&queens, "Qee1", "e4e1", "Qee1");
    check(&queens, "Q1e1", "h1e1", "Q1e1");
    // A pinned rival does not count: the knight on e2 cannot leave the e-file.
    let pinned = at("4r1k1/8/8/8/8/8/4N3/1N2K3 w - - 0 1");
    check(&pinned, "Nc3", "b1c3", "Nc3");
    check(&pinned, "Nbc3", "b1c3", "Nc3");
    assert!(matches!(san_to_uci(&pinned, "Nec3"), Err(MoveError::SanIllegal { .. })));
}

#[test]
fn check_and_mate_marks() {
    let position = position_after(None, &["e2e4", "e7e5", "f1c4", "b8c6", "d1h5", "g8f6"]).unwrap();
    check(&position, "Qxf7#", "h5f7", "Qxf7#");
    check(&position, "Qxf7", "h5f7", "Qxf7#");
    check(&position, "Bxf7+", "c4f7", "Bxf7+");
    check(&position, "Bxf7+!?", "c4f7", "Bxf7+");
    check(&position, "Nf3", "g1f3", "Nf3");
    check(&position, "Ng1-f3", "g1f3", "Nf3");
}

#[test]
fn ambiguous_illegal_and_malformed_moves_are_told_apart() {
    let knights = at("4k3/8/8/8/8/8/8/1N2KN2 w - - 0 1");
    match san_to_uci(&knights, "Nd2") {
        Err(MoveError::SanAmbiguous { san, candidates, .. }) => {
            assert_eq!(san, "Nd2");
            assert_eq!(candidates, ["b1d2", "f1d2"]);
        }
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    assert!(matches!(san_to_uci(&knights, "Ne4"), Err(MoveError::SanIllegal { .. })));
    assert!(matches!(san_to_uci(&knights, "Qd1"), Err(MoveError::SanIllegal { .. })));
    for text in ["", "Z9", "e9", "i4", "Nxx4", "Nf3=Q", "K", "O-O-O-O", "e4 ", "\u{1b}[0m"] {
        assert!(matches!(san_to_uci(&knights, text), Err(MoveError::SanSyntax { .. })), "{text:?}");
    }
    assert!(matches!(uci_to_san(&knights, "b1d3"), Err(MoveError::Illegal { .. })));
}
