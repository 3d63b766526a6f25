//! Sweep names become folders under the results and checkpoint roots: a name that is not one
//! safe path component (`..`, absolute, with a separator, hidden) is refused by the parser.

use std::path::Path;
use sweep_spec::file::{is_safe_name, MAX_NAME_LEN};
use sweep_spec::SweepFile;

fn parse_name(name: &str) -> Result<SweepFile, String> {
    let text = format!("name = {}\nworkload = \"mlp\"\n", toml_string(name));
    SweepFile::parse(&text, Path::new("s.toml"), Path::new("/tmp")).map_err(|e| e.to_string())
}

/// `name` as a TOML basic string, escaping what TOML requires.
fn toml_string(name: &str) -> String {
    let mut out = String::from("\"");
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const UNSAFE: &[&str] = &[
    "",
    ".",
    "..",
    "../x",
    "x/..",
    "/",
    "/etc",
    "/tmp/sweep",
    "a/b",
    "a\\b",
    ".hidden",
    "a b",
    "a\0b",
    "a\nb",
    "café",
    "a\u{202e}b",
    "a\x1b[2J",
    "~",
    "$HOME",
];

#[test]
fn unsafe_names_are_refused_with_the_key_named() {
    for name in UNSAFE {
        assert!(!is_safe_name(name), "{name:?}");
        let err = parse_name(name).unwrap_err();
        assert!(err.starts_with("s.toml: key `name`: expected 1-100 letters"), "{name:?}: {err}");
    }
    let long = "a".repeat(MAX_NAME_LEN + 1);
    assert!(!is_safe_name(&long));
    assert!(parse_name(&long).is_err());
}

#[test]
fn safe_names_are_single_path_components() {
    for name in ["a", "sweep-1", "dd_cifar10.v2", "a..b", "x.", &"z".repeat(MAX_NAME_LEN)] {
        assert!(is_safe_name(name), "{name:?}");
        assert_eq!(parse_name(name).unwrap().name, name);
        let joined = Path::new("/results").join(name);
        assert_eq!(joined.parent(), Some(Path::new("/results")), "{name:?} stays one folder inside the root");
    }
}
