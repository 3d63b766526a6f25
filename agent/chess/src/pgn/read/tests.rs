//! The reader on hand-written PGN: every construct it must skip or understand, every bound
//! exceeded by one, and the errors that say where the text went wrong.

use super::*;
use crate::MoveError;

/// Morphy's Opera Game with comments, nested variations, NAGs, annotations, a `%` line and
/// escaped tag quotes; then an endgame from a FEN with Black to move, an en-passant capture and a
/// promotion.
const TWO_GAMES: &str = r#"% an escape line, skipped
[Event "Paris \"Opera\" \\ 1858"]
[Site "Paris FRA"]
[Date "1858.??.??"]
[Round "?"]
[White "Paul Morphy"]
[Black "Duke Karl / Count Isouard"]
[Result "1-0"]

1.e4 e5 2. Nf3 d6 {Philidor's defence} 3. d4 Bg4?! $6 4. dxe5 Bxf3 5. Qxf3 dxe5
( 5... Nc6 { a { brace inside } (5... Nd7 6. Bc4 (6. Qb3 $1)) 6. Bb5 ) 6. Bc4 Nf6 7. Qb3
Qe7 8. Nc3 c6 9. Bg5 b5 10. Nxb5! cxb5 11. Bxb5+ Nbd7 12. O-O-O Rd8 ; a line comment (
13. Rxd7 Rxd7 14. Rd1 Qe6 15. Bxd7+ Nxd7 16. Qb8+!! Nxb8 17. Rd8# 1-0

[Event "endgame"]
[SetUp "1"]
[FEN "4k3/1P6/8/8/2pP4/8/8/4K3 b - d3 0 40"]

40... cxd3 41. b8=Q+ Ke7 42. Qb4+ Kd7 (42... Ke6 43. Qxd3) 43. Qb5+ *
"#;

#[test]
fn two_annotated_games_are_read_move_by_move() {
    let games = read_pgn(TWO_GAMES).unwrap();
    assert_eq!(games.len(), 2);

    let opera = &games[0];
    assert_eq!(opera.tag("Event"), Some(r#"Paris "Opera" \ 1858"#));
    assert_eq!(opera.tag("Black"), Some("Duke Karl / Count Isouard"));
    assert_eq!(opera.tags.len(), 7);
    assert_eq!(opera.result, GameResult::WhiteWins);
    let expected = "e2e4 e7e5 g1f3 d7d6 d2d4 c8g4 d4e5 g4f3 d1f3 d6e5 f1c4 g8f6 f3b3 d8e7 b1c3 c7c6 \
                    c1g5 b7b5 c3b5 c6b5 c4b5 b8d7 e1c1 a8d8 d1d7 d8d7 h1d1 e7e6 b5d7 f6d7 b3b8 d7b8 d1d8";
    assert_eq!(opera.moves, expected.split(' ').collect::<Vec<_>>());

    let endgame = &games[1];
    assert_eq!(endgame.start_fen(), Some("4k3/1P6/8/8/2pP4/8/8/4K3 b - d3 0 40"));
    assert_eq!(endgame.moves, ["c4d3", "b7b8q", "e8e7", "b8b4", "e7d7", "b4b5"]);
    assert_eq!(endgame.result, GameResult::Unknown);
}

#[test]
fn games_without_tags_and_empty_games_are_read() {
    let games = read_pgn("1. e4 e5 1/2-1/2\n*\n\n[Event \"e\"]\n0-1 1. d4 *").unwrap();
    let results: Vec<_> = games.iter().map(|game| game.result).collect();
    assert_eq!(results, [GameResult::Draw, GameResult::Unknown, GameResult::BlackWins, GameResult::Unknown]);
    assert_eq!(games[0].moves, ["e2e4", "e7e5"]);
    assert!(games[1].moves.is_empty() && games[2].moves.is_empty());
    assert_eq!(games[3].moves, ["d2d4"]);
    assert!(read_pgn("").unwrap().is_empty());
    assert!(read_pgn("  {only a comment}\n; and a line\n").unwrap().is_empty());
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let limits = PgnLimits::default();
    assert_eq!(limits.max_games, 10_000_000);
    assert_eq!(limits.max_plies, 2_000);
    assert_eq!(limits.max_tag_bytes, 1_000);
    assert_eq!(limits.max_token_bytes, 64);
    assert_eq!(limits.max_variation_depth, 64);
}

/// `plies` knight moves that shuffle both knights out and back.
fn knight_shuffle(plies: usize) -> String {
    let mut text = String::new();
    for (ply, san) in ["Nf3", "Nf6", "Ng1", "Ng8"].iter().cycle().take(plies).enumerate() {
        if ply % 2 == 0 {
            text.push_str(&format!("{}. ", ply / 2 + 1));
        }
        text.push_str(san);
        text.push(' ');
    }
    text + "*\n"
}

#[test]
fn a_game_one_ply_over_the_limit_is_refused() {
    let at_limit = read_pgn(&knight_shuffle(2_000)).unwrap();
    assert_eq!(at_limit[0].moves.len(), 2_000);
    let text = format!("*\n{}", knight_shuffle(2_001));
    let error = read_pgn(&text).unwrap_err();
    assert!(
        matches!(&error, PgnError::TooManyPlies { game: 2, ply: 2_001, token, limit: 2_000 } if token == "Nf3"),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("game 2, ply 2001: more than 2000 plies"), "{error}");
}

#[test]
fn tags_one_byte_over_the_limit_are_refused() {
    let name = "N".repeat(1_000);
    let value = "v".repeat(1_000);
    let games = read_pgn(&format!("[{name} \"{value}\"]\n*")).unwrap();
    assert_eq!(games[0].tags, [(name.clone(), value.clone())]);
    // Escapes count once unescaped: 998 bytes and two escaped quotes are exactly 1,000.
    let escaped = format!("[Event \"{}\\\"\\\"\"]\n*", "v".repeat(998));
    assert_eq!(read_pgn(&escaped).unwrap()[0].tag("Event").map(str::len), Some(1_000));

    let error = read_pgn(&format!("*\n[{name}N \"v\"]\n*")).unwrap_err();
    assert!(matches!(error, PgnError::TagTooLong { game: 2, what: "name", limit: 1_000, .. }), "{error:?}");
    assert!(error.to_string().starts_with("game 2: tag name \"NNN"), "{error}");
    let error = read_pgn(&format!("[Event \"{value}v\"]\n*")).unwrap_err();
    assert!(matches!(error, PgnError::TagTooLong { game: 1, what: "value", limit: 1_000, .. }), "{error:?}");
    let error = read_pgn(&format!("[Event \"{}\\\\\"]\n*", "v".repeat(1_000))).unwrap_err();
    assert!(matches!(error, PgnError::TagTooLong { game: 1, what: "value", .. }), "{error:?}");
}

#[test]
fn a_token_one_byte_over_the_limit_is_refused() {
    // A move number of 64 digits is a token at the limit, and is skipped like any move number.
    let number = format!("{}1", "0".repeat(63));
    assert_eq!(read_pgn(&format!("1. e4 {number}... e5 *")).unwrap()[0].moves, ["e2e4", "e7e5"]);
    let error = read_pgn(&format!("1. e4 0{number}... e5 *")).unwrap_err();
    assert!(matches!(&error, PgnError::TokenTooLong { game: 1, plies: 1, limit: 64, .. }), "{error:?}");
    assert!(error.to_string().starts_with("game 1, after 1 plies: token \"0000"), "{error}");
    // A long move, NAG or annotation is refused the same way.
    for token in ["N".repeat(65), format!("${}", "1".repeat(64)), "!".repeat(65)] {
        let error = read_pgn(&format!("1. e4 {token} *")).unwrap_err();
        assert!(matches!(error, PgnError::TokenTooLong { game: 1, .. }), "{token}: {error:?}");
    }
}

#[test]
fn variations_one_level_over_the_limit_are_refused() {
    let nested = |depth: usize| format!("1. e4 {}1... e5{} 1... c5 *", "( ".repeat(depth), " )".repeat(depth));
    assert_eq!(read_pgn(&nested(64)).unwrap()[0].moves, ["e2e4", "c7c5"]);
    let error = read_pgn(&nested(65)).unwrap_err();
    assert!(matches!(error, PgnError::VariationTooDeep { game: 1, plies: 1, limit: 64 }), "{error:?}");
    assert!(error.to_string().contains("nested more than 64 deep"), "{error}");
}

#[test]
fn one_game_over_the_limit_is_refused() {
    let limits = PgnLimits { max_games: 3, ..PgnLimits::default() };
    assert_eq!(read_pgn_with_limits("* * *", &limits).unwrap().len(), 3);
    let error = read_pgn_with_limits("* * * 1. e4 *", &limits).unwrap_err();
    assert!(matches!(error, PgnError::TooManyGames { game: 4, limit: 3 }), "{error:?}");
    assert_eq!(error.to_string(), "game 4: more than 3 games in one PGN text");
    // The reader yields the games before the error, then stops.
    let mut reader = Reader::new("* * * * *", limits);
    assert_eq!(reader.by_ref().take(3).filter(Result::is_ok).count(), 3);
    assert!(matches!(reader.next(), Some(Err(PgnError::TooManyGames { .. }))));
    assert!(reader.next().is_none());
}

#[test]
fn illegal_and_ambiguous_moves_name_game_ply_and_move() {
    let error = read_pgn("1. e4 e5 *\n\n1. e4 e5 2. Ke3 *").unwrap_err();
    assert!(
        matches!(&error, PgnError::Move { game: 2, ply: 3, error: MoveError::SanIllegal { san, .. } } if san == "Ke3"),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("game 2, ply 3: \"Ke3\" is not a legal move in "), "{error}");

    let ambiguous = "[SetUp \"1\"]\n[FEN \"4k3/8/8/8/8/8/8/1N2KN2 w - - 0 1\"]\n\n1. Nd2 *";
    let error = read_pgn(ambiguous).unwrap_err();
    assert!(matches!(&error, PgnError::Move { game: 1, ply: 1, error: MoveError::SanAmbiguous { .. } }), "{error:?}");
    assert!(error.to_string().contains("could be any of [\"b1d2\", \"f1d2\"]"), "{error}");

    let error = read_pgn("1. e4 Zz9 *").unwrap_err();
    assert!(matches!(&error, PgnError::Move { game: 1, ply: 2, error: MoveError::SanSyntax { .. } }), "{error:?}");
}

#[test]
fn malformed_text_is_refused_with_its_place() {
    let cases = [
        ("1. e4 e5", "game 1, after 2 plies: the text ends before the game's result"),
        ("1. e4 (1. d4", "game 1, after 1 plies: the text ends inside a variation"),
        ("1. e4 ) *", "game 1, after 1 plies: `)` without a variation"),
        ("1. e4 {never closed *", "game 1, after 1 plies: a `{` comment is not closed"),
        ("* 1. e4 [Event \"x\"] *", "game 2, after 1 plies: a tag pair starts before the game's result"),
        ("1. e4 ] *", "game 1, after 1 plies: `]` outside a tag pair"),
        ("1. e4 & *", "game 1, after 1 plies: unexpected character '&'"),
        ("[Event \"x\"]", "game 1, after 0 plies: the text ends after the tags"),
        ("[Event \"x]\n*", "game 1, after 0 plies: the value of tag \"Event\" runs past the end of its line"),
        ("[FEN \"8/8/8/8/8/8/8/8 w - - 0 1\"]\n*", "game 1: FEN tag: invalid FEN"),
    ];
    for (text, expected) in cases {
        let error = read_pgn(text).unwrap_err();
        assert!(error.to_string().starts_with(expected), "{text:?}: {error}");
    }
}

#[test]
fn files_are_named_in_errors_and_latin_1_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pgn");
    std::fs::write(&good, b"[White \"Ren\xe9\"]\n\n1. e4 *\n").unwrap();
    let games = read_pgn_file(&good).unwrap();
    assert_eq!(games[0].tag("White"), Some("René"));

    let bad = dir.path().join("bad.pgn");
    std::fs::write(&bad, "1. e4 e5 2. Ke3 *").unwrap();
    let error = read_pgn_file(&bad).unwrap_err();
    assert!(matches!(&error, PgnError::InFile { error, .. } if matches!(**error, PgnError::Move { ply: 3, .. })));
    assert!(error.to_string().starts_with(&format!("{}: game 1, ply 3:", bad.display())), "{error}");

    let missing = dir.path().join("missing.pgn");
    let error = read_pgn_file(&missing).unwrap_err();
    assert!(matches!(error, PgnError::Io { .. }));
    assert!(error.to_string().contains("missing.pgn"), "{error}");
}

#[test]
fn windows_line_endings_are_read() {
    let text = TWO_GAMES.replace('\n', "\r\n");
    let games = read_pgn(&text).unwrap();
    assert_eq!(games, read_pgn(TWO_GAMES).unwrap());
}

#[test]
fn no_cut_or_damaged_text_makes_the_reader_panic() {
    // Every prefix either reads or is refused with an error; none panics.
    let mut refused = 0;
    for end in (0..=TWO_GAMES.len()).filter(|&end| TWO_GAMES.is_char_boundary(end)) {
        refused += usize::from(read_pgn(&TWO_GAMES[..end]).is_err());
    }
    assert!(refused > TWO_GAMES.len() / 2);
    // Every byte replaced by characters that mean something in PGN.
    for (index, character) in TWO_GAMES.char_indices().step_by(3) {
        for replacement in ["{", "}", "(", ")", "[", "]", "\"", "\\", "%", ";", "$", "\n", "é", "\u{1b}"] {
            let mut damaged = TWO_GAMES.to_owned();
            damaged.replace_range(index..index + character.len_utf8(), replacement);
            let _ = read_pgn(&damaged);
        }
    }
}
