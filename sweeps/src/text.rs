//! Text that reaches people's terminals: names other machines send (agents, hosts, GPUs, metrics)
//! and free text (a trial's stderr). A control character there can clear the screen, retitle
//! the window or hide what follows, and a bidirectional override can make a name read as another.
//! The coordinator refuses names holding one of these ([`is_hidden`]); the CLI shows everything it
//! prints through [`escape`], so free text and names from an older coordinator are shown, not
//! obeyed.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` changes how a terminal shows text rather than being shown: C0 controls (newline and
/// tab included), DEL, C1 controls (U+0080–U+009F, `char::is_control`), and the bidirectional
/// marks, embeddings, overrides and isolates (U+200E, U+200F, U+061C, U+202A–U+202E,
/// U+2066–U+2069).
pub fn is_hidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [`is_hidden`] character written out visibly: `\n`, `\r` and `\t` as such,
/// the rest as `\u{1b}`, Rust's notation. For one-line cells and fields.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// [`escape`], keeping line breaks (`\n`) as they are: for multi-line messages such as errors.
pub fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

/// Serialized JSON with DEL, C1 controls and bidirectional formatting written as `\uXXXX`:
/// serde_json escapes only the C0 controls. Outside its strings JSON holds only ASCII, and C0
/// characters left in serialized JSON are whitespace between tokens, so the value is unchanged.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let needs = |c: char| c > '\u{1f}' && is_hidden(c);
    if !json.chars().any(needs) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs(c) {
            // Every such character lies in the Basic Multilingual Plane: one escape each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hidden(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if keep(c) || !is_hidden(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Marks where truncated text was cut.
pub const CUT: &str = "…";

/// Keeps the end of `text`: at most `max` bytes with the mark, cut at a character boundary.
pub fn keep_tail(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mark = if max >= CUT.len() { CUT } else { "" };
    let mut start = text.len() - (max - mark.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    *text = format!("{mark}{}", &text[start..]);
}

/// Keeps the start of `text`: at most `max` bytes with the mark, cut at a character boundary.
pub fn keep_head(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mark = if max >= CUT.len() { CUT } else { "" };
    let mut end = max - mark.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(mark);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["", "test_error", "GPU-1a2b", "café ü 東京", "class_acc/3"] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn terminal_sequences_are_shown_not_obeyed() {
        assert_eq!(escape("\x1b[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(escape("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(escape("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape("del\x7f c1\u{9b}31m"), "del\\u{7f} c1\\u{9b}31m");
        assert_eq!(escape("\0"), "\\u{0}");
    }

    #[test]
    fn bidi_controls_are_shown() {
        assert_eq!(escape("agent\u{202E}gpj.exe"), "agent\\u{202e}gpj.exe");
        for c in ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert!(is_hidden(c), "{c:?}");
            assert!(!escape(&c.to_string()).contains(c));
        }
        // Neighbours that are ordinary text.
        for c in ['\u{2065}', '\u{206A}', '\u{2029}', '\u{2030}', 'a', ' ', '東'] {
            assert!(!is_hidden(c), "{c:?}");
        }
    }

    #[test]
    fn escaped_text_holds_no_hidden_character() {
        let all: String = (0u32..0x2100).filter_map(char::from_u32).collect();
        let escaped = escape(&all);
        assert!(!escaped.chars().any(is_hidden));
        assert!(!escaped.contains('\x1b'));
    }

    #[test]
    fn json_keeps_its_value_and_loses_raw_c1_del_and_bidi() {
        let value = serde_json::json!({"agent": "a\u{202e}b", "m": "\x1b[2J\x7f\u{9b}", "n": [1, 2]});
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let shown = escape_json(&pretty);
        assert!(!shown.chars().any(|c| c > '\u{1f}' && is_hidden(c)), "{shown}");
        assert!(!shown.contains('\x1b') && shown.contains("\\u202e") && shown.contains("\\u009b"), "{shown}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).unwrap(), value);
        assert!(matches!(escape_json("{\n  \"a\": 1\n}"), Cow::Borrowed(_)));
    }

    #[test]
    fn multi_line_messages_keep_their_line_breaks() {
        assert_eq!(escape_keeping_lines("line 1\nline\x1b[2J 2\r"), "line 1\nline\\u{1b}[2J 2\\r");
    }
}
