//! Splits PGN text into tokens: tag brackets, symbols (moves, move numbers, results), periods,
//! NAGs, `!?` annotations and parentheses. Comments (`{...}`, `;` to end of line) and `%` escape
//! lines are skipped here. Tokens borrow from the text; only tag values are copied (to unescape).

use crate::error::excerpt;

/// One PGN token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// `[`, which opens a tag pair; read the pair with [`Lexer::tag_pair`].
    TagOpen,
    /// A symbol: a move, a move number, a result other than `*`.
    Symbol(&'a str),
    /// `.` after a move number.
    Period,
    /// `*`, the unknown result.
    Star,
    /// A numeric annotation glyph such as `$1`.
    Nag(&'a str),
    /// A run of `!` and `?`.
    Annotation(&'a str),
    /// `(`, which opens a variation.
    Open,
    /// `)`, which closes a variation.
    Close,
    /// `]` outside a tag pair.
    StrayTagClose,
}

/// What is wrong with the text at the lexer's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LexError {
    /// A token longer than the limit; the text is its beginning.
    TokenTooLong(String),
    /// A tag name (`what` = "name") or value longer than the limit; the text is its beginning.
    TagTooLong { what: &'static str, text: String },
    /// Anything else, said in words.
    Syntax(String),
}

/// A cursor over PGN text.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    max_token_bytes: usize,
    max_tag_bytes: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str, max_token_bytes: usize, max_tag_bytes: usize) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Self { text, pos: 0, max_token_bytes, max_tag_bytes }
    }

    /// The next token, or `None` at the end of the text.
    pub(super) fn next_token(&mut self) -> Result<Option<Token<'a>>, LexError> {
        self.skip_space_and_comments()?;
        let bytes = self.text.as_bytes();
        let Some(&first) = bytes.get(self.pos) else { return Ok(None) };
        let start = self.pos;
        self.pos += 1;
        let token = match first {
            b'[' => Token::TagOpen,
            b']' => Token::StrayTagClose,
            b'.' => Token::Period,
            b'*' => Token::Star,
            b'(' => Token::Open,
            b')' => Token::Close,
            b'$' => {
                self.pos = self.run_end(|byte| byte.is_ascii_digit());
                if self.pos == start + 1 {
                    return Err(LexError::Syntax("`$` without a number".into()));
                }
                Token::Nag(self.token_text(start)?)
            }
            b'!' | b'?' => {
                self.pos = self.run_end(|byte| matches!(byte, b'!' | b'?'));
                Token::Annotation(self.token_text(start)?)
            }
            byte if byte.is_ascii_alphanumeric() => {
                self.pos = self.run_end(|byte| byte.is_ascii_alphanumeric() || b"_+#=:-/".contains(&byte));
                Token::Symbol(self.token_text(start)?)
            }
            _ => {
                let character = self.text[start..].chars().next().unwrap_or('?');
                return Err(LexError::Syntax(format!("unexpected character {character:?}")));
            }
        };
        Ok(Some(token))
    }

    /// Reads the rest of a tag pair after its `[`: a name, a quoted value, `]`. The value's `\"`
    /// and `\\` escapes are undone; a value must end on its line.
    ///
    /// Some writers (python-chess among them) escape nothing, so a value may hold bare quotes:
    /// when the escaped reading does not end in `"]`, a line that ends in `"]` is read the way
    /// those writers read it, everything between the first quote and that last one, verbatim.
    pub(super) fn tag_pair(&mut self) -> Result<(String, String), LexError> {
        self.skip_blanks();
        let start = self.pos;
        self.pos = self.run_end(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
        let name = &self.text[start..self.pos];
        if name.len() > self.max_tag_bytes {
            return Err(LexError::TagTooLong { what: "name", text: excerpt(name, 40) });
        }
        if name.is_empty() {
            return Err(LexError::Syntax("a tag pair without a name".into()));
        }
        self.skip_blanks();
        if self.text.as_bytes().get(self.pos) != Some(&b'"') {
            return Err(LexError::Syntax(format!("tag {name:?} has no quoted value")));
        }
        self.pos += 1;
        let value_start = self.pos;
        let escaped = self.escaped_value(name).and_then(|value| {
            self.skip_blanks();
            if self.text.as_bytes().get(self.pos) == Some(&b']') {
                self.pos += 1;
                Ok(value)
            } else {
                Err(LexError::Syntax(format!("tag {name:?} is not closed by `]`")))
            }
        });
        let value = match escaped {
            Err(LexError::Syntax(problem)) => {
                let rest = &self.text[value_start..];
                let line = rest[..rest.find('\n').unwrap_or(rest.len())].trim_end();
                let Some(verbatim) = line.strip_suffix("\"]") else { return Err(LexError::Syntax(problem)) };
                if verbatim.len() > self.max_tag_bytes {
                    return Err(LexError::TagTooLong { what: "value", text: excerpt(verbatim, 40) });
                }
                self.pos = value_start + line.len();
                verbatim.to_owned()
            }
            other => other?,
        };
        Ok((name.to_owned(), value))
    }

    /// Reads a tag value up to its closing quote, undoing `\"` and `\\` escapes.
    fn escaped_value(&mut self, name: &str) -> Result<String, LexError> {
        let mut value = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(offset) = rest.find(['"', '\\', '\n', '\r']) else {
                return Err(LexError::Syntax(format!("the value of tag {name:?} is not closed")));
            };
            if value.len() + offset > self.max_tag_bytes {
                value.push_str(&rest[..offset]);
                return Err(LexError::TagTooLong { what: "value", text: excerpt(&value, 40) });
            }
            value.push_str(&rest[..offset]);
            self.pos += offset + 1;
            match rest.as_bytes()[offset] {
                b'"' => return Ok(value),
                b'\\' => match self.text.as_bytes().get(self.pos) {
                    Some(&escaped @ (b'"' | b'\\')) => {
                        value.push(char::from(escaped));
                        self.pos += 1;
                    }
                    _ => value.push('\\'),
                },
                _ => return Err(LexError::Syntax(format!("the value of tag {name:?} runs past the end of its line"))),
            }
            if value.len() > self.max_tag_bytes {
                return Err(LexError::TagTooLong { what: "value", text: excerpt(&value, 40) });
            }
        }
    }

    /// The text from `start` to the lexer's position, if it is within the token limit.
    fn token_text(&self, start: usize) -> Result<&'a str, LexError> {
        let token = &self.text[start..self.pos];
        if token.len() > self.max_token_bytes {
            return Err(LexError::TokenTooLong(excerpt(token, 40)));
        }
        Ok(token)
    }

    /// The end of the run of bytes from the lexer's position that `keep` accepts.
    fn run_end(&self, keep: impl Fn(u8) -> bool) -> usize {
        let rest = &self.text.as_bytes()[self.pos..];
        self.pos + rest.iter().position(|&byte| !keep(byte)).unwrap_or(rest.len())
    }

    fn skip_blanks(&mut self) {
        self.pos = self.run_end(|byte| byte == b' ' || byte == b'\t');
    }

    /// Skips whitespace, `{...}` and `;` comments, and `%` lines (a `%` in the first column).
    fn skip_space_and_comments(&mut self) -> Result<(), LexError> {
        let bytes = self.text.as_bytes();
        while let Some(&byte) = bytes.get(self.pos) {
            let at_line_start = self.pos == 0 || bytes[self.pos - 1] == b'\n';
            match byte {
                byte if byte.is_ascii_whitespace() => self.pos += 1,
                b'{' => match self.text[self.pos..].find('}') {
                    Some(offset) => self.pos += offset + 1,
                    None => return Err(LexError::Syntax("a `{` comment is not closed".into())),
                },
                b';' => self.skip_line(),
                b'%' if at_line_start => self.skip_line(),
                _ => break,
            }
        }
        Ok(())
    }

    fn skip_line(&mut self) {
        self.pos = self.text[self.pos..].find('\n').map_or(self.text.len(), |offset| self.pos + offset + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token<'_>> {
        let mut lexer = Lexer::new(text, 64, 1000);
        std::iter::from_fn(|| lexer.next_token().unwrap()).collect()
    }

    #[test]
    fn movetext_splits_into_tokens() {
        use Token::*;
        assert_eq!(
            tokens("1.e4 e5!? 2. Nf3 $1 {a comment} (2... Nc6) ; to the end\n% escaped line\n1/2-1/2 *"),
            [
                Symbol("1"),
                Period,
                Symbol("e4"),
                Symbol("e5"),
                Annotation("!?"),
                Symbol("2"),
                Period,
                Symbol("Nf3"),
                Nag("$1"),
                Open,
                Symbol("2"),
                Period,
                Period,
                Period,
                Symbol("Nc6"),
                Close,
                Symbol("1/2-1/2"),
                Star,
            ]
        );
    }

    #[test]
    fn a_percent_sign_only_escapes_at_the_start_of_a_line() {
        let mut lexer = Lexer::new("e4 %", 64, 1000);
        assert_eq!(lexer.next_token(), Ok(Some(Token::Symbol("e4"))));
        assert!(matches!(lexer.next_token(), Err(LexError::Syntax(_))));
    }

    #[test]
    fn tag_values_are_unescaped() {
        let mut lexer = Lexer::new(r#"[Event "say \"hi\" \\ \x"]"#, 64, 1000);
        assert_eq!(lexer.next_token(), Ok(Some(Token::TagOpen)));
        assert_eq!(lexer.tag_pair(), Ok(("Event".to_owned(), r#"say "hi" \ \x"#.to_owned())));
        assert_eq!(lexer.next_token(), Ok(None));
    }

    #[test]
    fn unescaped_quotes_are_read_as_their_writers_meant() {
        let mut lexer = Lexer::new("[Event \"say \"hi\" \\ now\"]  \r\n[Site \"x\"]", 64, 1000);
        assert_eq!(lexer.next_token(), Ok(Some(Token::TagOpen)));
        assert_eq!(lexer.tag_pair(), Ok(("Event".to_owned(), r#"say "hi" \ now"#.to_owned())));
        assert_eq!(lexer.next_token(), Ok(Some(Token::TagOpen)));
        assert_eq!(lexer.tag_pair(), Ok(("Site".to_owned(), "x".to_owned())));
        // A value that ends in a bare backslash.
        let mut lexer = Lexer::new(r#"Annotator "C:\"]"#, 64, 1000);
        assert_eq!(lexer.tag_pair(), Ok(("Annotator".to_owned(), r"C:\".to_owned())));
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in ["{ open", "$", "&", "é"] {
            let mut lexer = Lexer::new(text, 64, 1000);
            assert!(matches!(lexer.next_token(), Err(LexError::Syntax(_))), "{text:?}");
        }
        for text in [r#"Event "open"#, "Event \"split\nline\"]", r#"Event "x""#, r#""x"]"#, r#"Event x]"#] {
            let mut lexer = Lexer::new(text, 64, 1000);
            assert!(matches!(lexer.tag_pair(), Err(LexError::Syntax(_))), "{text:?}");
        }
    }
}
