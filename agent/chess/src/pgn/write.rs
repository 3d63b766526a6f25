//! The PGN writer: the seven-tag roster first, then the game's other tags, then SAN movetext
//! wrapped below 80 columns and closed by the result, one blank line between games.

use crate::error::PgnError;
use crate::game::Game;
use crate::position::Side;
use crate::{san, uci};

/// The seven tags every PGN game carries, in the order the standard gives them, with the value
/// written when a game lacks the tag.
const ROSTER: [(&str, &str); 7] = [
    ("Event", "?"),
    ("Site", "?"),
    ("Date", "????.??.??"),
    ("Round", "?"),
    ("White", "?"),
    ("Black", "?"),
    ("Result", "*"),
];

/// Lines of movetext stay shorter than this.
const LINE_LIMIT: usize = 80;

/// Writes `games` as PGN. The `Result` tag always repeats the game's result. Fails on a game
/// whose FEN tag or moves the rules refuse, naming the game (from 1) and the ply.
///
/// Tag values are written with `"` and `\` escaped and line breaks turned into spaces, since PGN
/// strings are one line; tag names are written as given and should be letters, digits and `_`.
pub fn write_pgn(games: &[Game]) -> Result<String, PgnError> {
    let mut out = String::new();
    for (index, game) in games.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        write_game(&mut out, index + 1, game)?;
    }
    Ok(out)
}

fn write_game(out: &mut String, number: usize, game: &Game) -> Result<(), PgnError> {
    for (name, default) in ROSTER {
        let value = if name == "Result" { game.result.as_str() } else { game.tag(name).unwrap_or(default) };
        write_tag(out, name, value);
    }
    for (name, value) in &game.tags {
        if !ROSTER.iter().any(|(roster, _)| roster == name) {
            write_tag(out, name, value);
        }
    }
    out.push('\n');

    let mut position = game.start_position().map_err(|error| PgnError::Fen { game: number, error })?;
    let mut line = Line { out, width: 0 };
    for (index, text) in game.moves.iter().enumerate() {
        let Some(mv) = uci::parse(&position.board, text) else {
            let error = crate::MoveError::Illegal { uci: text.clone(), fen: position.fen() };
            return Err(PgnError::Move { game: number, ply: index + 1, error });
        };
        match position.side_to_move() {
            Side::White => line.word(&format!("{}.", position.fullmove_number())),
            Side::Black if index == 0 => line.word(&format!("{}...", position.fullmove_number())),
            Side::Black => {}
        }
        line.word(&san::write(&position.board, mv));
        position.board.play_unchecked(mv);
    }
    line.word(game.result.as_str());
    line.out.push('\n');
    Ok(())
}

fn write_tag(out: &mut String, name: &str, value: &str) {
    out.push('[');
    out.push_str(name);
    out.push_str(" \"");
    for character in value.chars() {
        match character {
            '"' | '\\' => {
                out.push('\\');
                out.push(character);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(character),
        }
    }
    out.push_str("\"]\n");
}

/// Movetext being written: words separated by spaces, a line break before a word that would
/// reach [`LINE_LIMIT`].
struct Line<'a> {
    out: &'a mut String,
    width: usize,
}

impl Line<'_> {
    fn word(&mut self, word: &str) {
        if self.width > 0 && self.width + 1 + word.len() >= LINE_LIMIT {
            self.out.push('\n');
            self.width = 0;
        }
        if self.width > 0 {
            self.out.push(' ');
            self.width += 1;
        }
        self.out.push_str(word);
        self.width += word.len();
    }
}

#[cfg(test)]
mod tests;
