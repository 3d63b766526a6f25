//! Parameter names. A `command` trial gets each parameter as `--<name> <value>` and as the
//! environment variable `SWEEP_PARAM_<NAME>`, so a name must make one clean flag and a variable of
//! its own: the sweep file parser, the coordinator and the agent refuse any other. Names in any
//! script stay welcome (`größe`, `学习率`): they make fine flags, and their variables are checked to
//! be distinct.

/// Longest parameter name, in bytes.
pub const MAX_LEN: usize = 128;

/// What a name may look like, for error messages.
pub const RULE: &str = "a parameter name of 1 to 128 bytes, not starting with '-', without whitespace, '=', \
                        control or bidirectional formatting characters";

/// Whether `name` makes one clean `--name` flag: not empty (the flag `--` ends a program's options),
/// not starting with '-' (a flag of its own), no whitespace or '=' (split by many argument
/// parsers), nothing that drives a terminal or reorders text (`text::is_hidden`), and at most
/// [`MAX_LEN`] bytes.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && !name.starts_with('-')
        && !name.chars().any(|c| c.is_whitespace() || c == '=' || crate::text::is_hidden(c))
}

/// `SWEEP_PARAM_` + the name in upper case, with anything but letters and digits as `_`.
pub fn env_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("SWEEP_PARAM_{cleaned}")
}

/// Why a set of names cannot all be parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The name breaks [`RULE`].
    Invalid { name: String },
    /// Two different names become the same environment variable: the last would silently win.
    SameVariable { first: String, second: String, variable: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Invalid { name } => {
                let shown: String = name.chars().take(MAX_LEN).collect();
                let cut = if shown.len() < name.len() { "…" } else { "" };
                write!(f, "{RULE}, got {}{cut}", crate::text::escape(&format!("{shown:?}")))
            }
            Problem::SameVariable { first, second, variable } => write!(
                f,
                "parameter names that differ as environment variables; `{first}` and `{second}` both become {variable}"
            ),
        }
    }
}

/// Checks `names` in order: the first invalid name, or the first name whose variable an earlier
/// name already has.
pub fn check<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), Problem> {
    let mut seen = Names::default();
    names.into_iter().try_for_each(|name| seen.add(name))
}

/// The names of one trial or sweep so far, by environment variable, for checking one at a time.
#[derive(Debug, Default)]
pub struct Names {
    by_variable: std::collections::HashMap<String, String>,
}

impl Names {
    /// Adds `name`, or says why it cannot join the names before it. A name seen before is fine.
    pub fn add(&mut self, name: &str) -> Result<(), Problem> {
        if !is_valid(name) {
            return Err(Problem::Invalid { name: name.to_string() });
        }
        let variable = env_name(name);
        match self.by_variable.get(&variable) {
            Some(first) if first != name => {
                Err(Problem::SameVariable { first: first.clone(), second: name.to_string(), variable })
            }
            Some(_) => Ok(()),
            None => {
                self.by_variable.insert(variable, name.to_string());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_make_clean_flags_and_variables_are_valid() {
        let longest = "a".repeat(MAX_LEN);
        for name in
            ["lr", "batch_size", "_private", "label-noise.x", "model.encoder.layers", "1e", "größe", "学习率", &longest]
        {
            assert!(is_valid(name), "{name:?}");
        }
        for name in [
            "",
            "-",
            "-lr",
            "--lr",
            "a b",
            "a=b",
            "a\tb",
            "a\nb",
            "a\x1b[2J",
            "a\u{202e}b",
            "a\u{2066}",
            "a\0",
            "a\u{a0}b",
        ] {
            assert!(!is_valid(name), "{name:?}");
        }
        assert!(!is_valid(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn environment_names_are_upper_case_with_underscores() {
        assert_eq!(env_name("lr"), "SWEEP_PARAM_LR");
        assert_eq!(env_name("label-noise.x"), "SWEEP_PARAM_LABEL_NOISE_X");
    }

    #[test]
    fn names_that_share_a_variable_are_refused_naming_both() {
        for (a, b) in [("a-b", "a_b"), ("a.b", "a-b"), ("LR", "lr")] {
            let problem = check([a, "other", b]).unwrap_err();
            assert_eq!(
                problem,
                Problem::SameVariable { first: a.into(), second: b.into(), variable: env_name(a) },
                "{a} {b}"
            );
            let text = problem.to_string();
            assert!(text.contains(&format!("`{a}`")) && text.contains(&format!("`{b}`")), "{text}");
        }
        assert_eq!(check(["a", "b", "a_b"]), Ok(()));
        // The same name twice is one parameter (fixed and grid are checked elsewhere).
        assert_eq!(check(["a", "a"]), Ok(()));
    }

    #[test]
    fn an_invalid_name_is_quoted_with_control_characters_escaped_and_cut() {
        let text = check(["ok", "\x1b[2J"]).unwrap_err().to_string();
        assert!(text.ends_with(r#"got "\u{1b}[2J""#), "{text}");
        let long = "x".repeat(10 * MAX_LEN);
        let text = check([format!("-{long}").as_str()]).unwrap_err().to_string();
        assert!(text.len() < 3 * MAX_LEN && text.ends_with('…'), "{text}");
    }
}
