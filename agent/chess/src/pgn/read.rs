//! The PGN reader: tag pairs, then movetext whose main-line SAN moves are resolved against the
//! position one by one; comments, NAGs, annotations and (nested) variations are skipped. Every
//! size is bounded by [`PgnLimits`], so a hostile file costs at most its own length in time.

use std::path::Path;

use crate::error::PgnError;
use crate::game::{Game, GameResult};
use crate::pgn::lexer::{LexError, Lexer, Token};
use crate::{san, uci};

/// The bounds the reader enforces; text that exceeds one is refused, not truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgnLimits {
    /// Games in one text.
    pub max_games: usize,
    /// Main-line plies in one game.
    pub max_plies: usize,
    /// Bytes in a tag name, and in a tag value after unescaping.
    pub max_tag_bytes: usize,
    /// Bytes in one movetext token (a move, a move number, a NAG, an annotation).
    pub max_token_bytes: usize,
    /// How deep variations may nest.
    pub max_variation_depth: usize,
}

impl Default for PgnLimits {
    fn default() -> Self {
        Self {
            max_games: 10_000_000,
            max_plies: 2_000,
            max_tag_bytes: 1_000,
            max_token_bytes: 64,
            max_variation_depth: 64,
        }
    }
}

/// Reads every game in `text` under the default [`PgnLimits`].
pub fn read_pgn(text: &str) -> Result<Vec<Game>, PgnError> {
    read_pgn_with_limits(text, &PgnLimits::default())
}

/// Reads every game in `text` under `limits`.
pub fn read_pgn_with_limits(text: &str, limits: &PgnLimits) -> Result<Vec<Game>, PgnError> {
    Reader::new(text, limits.clone()).collect()
}

/// Reads every game in the file at `path` under the default [`PgnLimits`]; errors name the file.
/// A file that is not UTF-8 is read as ISO 8859-1, the character set the PGN standard specifies.
pub fn read_pgn_file(path: impl AsRef<Path>) -> Result<Vec<Game>, PgnError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| PgnError::Io { path: path.to_owned(), source })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error.into_bytes().iter().map(|&byte| char::from(byte)).collect(),
    };
    read_pgn(&text).map_err(|error| PgnError::InFile { path: path.to_owned(), error: Box::new(error) })
}

/// Reads games one at a time, for texts too large to hold all their games at once. It yields
/// nothing more after its first error.
pub struct Reader<'a> {
    lexer: Lexer<'a>,
    limits: PgnLimits,
    games: usize,
    failed: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `text` that enforces `limits`.
    pub fn new(text: &'a str, limits: PgnLimits) -> Self {
        Self { lexer: Lexer::new(text, limits.max_token_bytes, limits.max_tag_bytes), limits, games: 0, failed: false }
    }

    fn next_game(&mut self) -> Result<Option<Game>, PgnError> {
        let mut at = At { game: self.games + 1, plies: 0 };
        let Some(mut token) = self.lexer.next_token().map_err(|error| at.lex(error, &self.limits))? else {
            return Ok(None);
        };
        self.games += 1;
        if self.games > self.limits.max_games {
            return Err(PgnError::TooManyGames { game: self.games, limit: self.limits.max_games });
        }
        let mut tags = Vec::new();
        while token == Token::TagOpen {
            tags.push(self.lexer.tag_pair().map_err(|error| at.lex(error, &self.limits))?);
            token =
                self.next_token(&at)?.ok_or_else(|| at.syntax("the text ends after the tags, before any movetext"))?;
        }
        let mut game = Game { tags, moves: Vec::new(), result: GameResult::Unknown };
        let mut position = game.start_position().map_err(|error| PgnError::Fen { game: at.game, error })?;
        let mut depth = 0;
        loop {
            match token {
                Token::Symbol(text) if GameResult::from_pgn(text).is_some() => {
                    if depth == 0 {
                        game.result = GameResult::from_pgn(text).unwrap_or(GameResult::Unknown);
                        return Ok(Some(game));
                    }
                }
                Token::Star if depth == 0 => return Ok(Some(game)),
                Token::Symbol(text) if depth == 0 && !text.bytes().all(|byte| byte.is_ascii_digit()) => {
                    let ply = at.plies + 1;
                    if ply > self.limits.max_plies {
                        return Err(PgnError::TooManyPlies {
                            game: at.game,
                            ply,
                            token: text.to_owned(),
                            limit: self.limits.max_plies,
                        });
                    }
                    let mv = san::resolve(&position.board, text).map_err(|error| PgnError::Move {
                        game: at.game,
                        ply,
                        error,
                    })?;
                    game.moves.push(uci::format(&position.board, mv));
                    position.board.play_unchecked(mv);
                    at.plies = ply;
                }
                Token::Open => {
                    depth += 1;
                    if depth > self.limits.max_variation_depth {
                        return Err(PgnError::VariationTooDeep {
                            game: at.game,
                            plies: at.plies,
                            limit: self.limits.max_variation_depth,
                        });
                    }
                }
                Token::Close if depth == 0 => return Err(at.syntax("`)` without a variation to close")),
                Token::Close => depth -= 1,
                Token::TagOpen => return Err(at.syntax("a tag pair starts before the game's result")),
                Token::StrayTagClose => return Err(at.syntax("`]` outside a tag pair")),
                // Move numbers, periods, NAGs, annotations, and everything inside a variation.
                Token::Symbol(_) | Token::Star | Token::Period | Token::Nag(_) | Token::Annotation(_) => {}
            }
            token = self.next_token(&at)?.ok_or_else(|| {
                at.syntax(if depth > 0 {
                    "the text ends inside a variation"
                } else {
                    "the text ends before the game's result (`1-0`, `0-1`, `1/2-1/2` or `*`)"
                })
            })?;
        }
    }

    fn next_token(&mut self, at: &At) -> Result<Option<Token<'a>>, PgnError> {
        self.lexer.next_token().map_err(|error| at.lex(error, &self.limits))
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<Game, PgnError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let game = self.next_game().transpose();
        self.failed = matches!(game, Some(Err(_)));
        game
    }
}

/// Where the reader is: which game, and how many of its main-line plies it has read.
struct At {
    game: usize,
    plies: usize,
}

impl At {
    fn syntax(&self, problem: &str) -> PgnError {
        PgnError::Syntax { game: self.game, plies: self.plies, problem: problem.to_owned() }
    }

    fn lex(&self, error: LexError, limits: &PgnLimits) -> PgnError {
        match error {
            LexError::TokenTooLong(token) => {
                PgnError::TokenTooLong { game: self.game, plies: self.plies, token, limit: limits.max_token_bytes }
            }
            LexError::TagTooLong { what, text } => {
                PgnError::TagTooLong { game: self.game, what, text, limit: limits.max_tag_bytes }
            }
            LexError::Syntax(problem) => PgnError::Syntax { game: self.game, plies: self.plies, problem },
        }
    }
}

#[cfg(test)]
mod tests;
