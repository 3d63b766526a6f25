//! The writer: what it writes, and that the reader reads it back to the same moves.

use super::*;
use crate::{play_games, read_pgn, GameResult};

fn game(tags: &[(&str, &str)], moves: &[&str], result: GameResult) -> Game {
    Game {
        tags: tags.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        moves: moves.iter().map(|mv| mv.to_string()).collect(),
        result,
    }
}

#[test]
fn writes_the_roster_then_other_tags_then_movetext() {
    let games = [
        game(
            &[("White", "Morphy"), ("Annotator", "a \"quoted\" \\ name"), ("Event", "Opera")],
            &["e2e4", "e7e5", "g1f3", "b8c6", "f1b5", "g8f6", "e1g1"],
            GameResult::Draw,
        ),
        game(
            &[("SetUp", "1"), ("FEN", "4k3/1P6/8/8/2pP4/8/8/4K3 b - d3 0 40")],
            &["c4d3", "b7b8q"],
            GameResult::Unknown,
        ),
    ];
    let expected = r#"[Event "Opera"]
[Site "?"]
[Date "????.??.??"]
[Round "?"]
[White "Morphy"]
[Black "?"]
[Result "1/2-1/2"]
[Annotator "a \"quoted\" \\ name"]

1. e4 e5 2. Nf3 Nc6 3. Bb5 Nf6 4. O-O 1/2-1/2

[Event "?"]
[Site "?"]
[Date "????.??.??"]
[Round "?"]
[White "?"]
[Black "?"]
[Result "*"]
[SetUp "1"]
[FEN "4k3/1P6/8/8/2pP4/8/8/4K3 b - d3 0 40"]

40... cxd3 41. b8=Q+ *
"#;
    let text = write_pgn(&games).unwrap();
    assert_eq!(text, expected);
    let read = read_pgn(&text).unwrap();
    assert_eq!(read[0].moves, games[0].moves);
    assert_eq!(read[0].tag("Annotator"), Some("a \"quoted\" \\ name"));
    assert_eq!(read[1].moves, games[1].moves);
}

#[test]
fn engine_games_round_trip_through_pgn() {
    let games = play_games(60, 11, 300);
    let text = write_pgn(&games).unwrap();
    assert!(text.lines().all(|line| line.len() < 80), "a line reaches 80 columns");
    assert!(text.lines().any(|line| line.len() > 70), "movetext is wrapped near the limit, not early");
    let read = read_pgn(&text).unwrap();
    assert_eq!(read.len(), games.len());
    for (index, (written, read)) in games.iter().zip(&read).enumerate() {
        assert_eq!(read.moves, written.moves, "game {index}");
        assert_eq!(read.result, written.result, "game {index}");
        assert_eq!(read.tag("Seed"), Some("11"));
    }
    // The games exercise what the writer must get right.
    for needle in ["O-O", "O-O-O", "=Q", "#", "+"] {
        assert!(text.contains(needle), "no {needle} in 60 engine games");
    }
}

#[test]
fn a_game_the_rules_refuse_is_not_written() {
    let illegal = game(&[], &["e2e4", "e7e5", "e4e5"], GameResult::Unknown);
    let error = write_pgn(&[game(&[], &[], GameResult::Unknown), illegal]).unwrap_err();
    assert!(matches!(error, PgnError::Move { game: 2, ply: 3, .. }), "{error:?}");
    let bad_fen = game(&[("FEN", "not a fen")], &[], GameResult::Unknown);
    assert!(matches!(write_pgn(&[bad_fen]), Err(PgnError::Fen { game: 1, .. })));
}

#[test]
fn line_breaks_in_tag_values_become_spaces() {
    let text = write_pgn(&[game(&[("Event", "two\nlines")], &[], GameResult::Unknown)]).unwrap();
    assert!(text.starts_with("[Event \"two lines\"]\n"), "{text}");
    assert_eq!(read_pgn(&text).unwrap()[0].tag("Event"), Some("two lines"));
}
