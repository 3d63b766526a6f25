//! Parameter names become `--name` flags and `SWEEP_PARAM_<NAME>` variables of command trials: a
//! name that makes no clean flag, or two names that make one variable, are refused by the parser
//! with the keys named. Every shipped study still parses.

use std::path::Path;
use sweep_spec::param_names::MAX_LEN;
use sweep_spec::{expand, SweepFile};

fn parse(tables: &str) -> Result<SweepFile, String> {
    let text = format!("name = \"p\"\nworkload = \"command\"\ncommand = [\"run\"]\n{tables}");
    SweepFile::parse(&text, Path::new("p.toml"), Path::new("/tmp")).map_err(|e| e.to_string())
}

#[test]
fn an_empty_name_is_refused_instead_of_becoming_a_bare_double_dash() {
    let err = parse("[params]\n\"\" = 1\n").unwrap_err();
    assert!(err.starts_with("p.toml: key `params.`: expected a parameter name of 1 to 128 bytes"), "{err}");
    let err = parse("[grid]\n\"\" = [1, 2]\n").unwrap_err();
    assert!(err.contains("key `grid.`"), "{err}");
}

#[test]
fn names_that_become_one_variable_are_refused_naming_both_keys() {
    for (tables, second, first) in [
        ("[params]\na-b = 1\na_b = 2\n", "params.a_b", "params.a-b"),
        ("[params]\n\"a.b\" = 1\n[grid]\na_b = [1, 2]\n", "grid.a_b", "params.a.b"),
        ("[grid]\nLR = [1]\n[random]\nsamples = 2\nlr = { uniform = [0.1, 0.2] }\n", "random.lr", "grid.LR"),
    ] {
        let err = parse(tables).unwrap_err();
        assert!(err.starts_with(&format!("p.toml: key `{second}`: expected parameter names that differ")), "{err}");
        assert!(err.contains(&format!("(the other is set by `{first}`)")), "{err}");
        assert!(err.contains("SWEEP_PARAM_"), "{err}");
    }
}

#[test]
fn names_that_make_no_clean_flag_are_refused_with_the_key_and_the_name() {
    for (key, name_toml) in [
        ("-lr", "\"-lr\""),
        ("a b", "\"a b\""),
        ("a=b", "\"a=b\""),
        ("a\u{1b}[2J", "\"a\\u001b[2J\""),
        ("a\u{202e}b", "\"a\\u202eb\""),
        ("a\nb", "\"a\\nb\""),
    ] {
        let err = parse(&format!("[params]\n{name_toml} = 1\n")).unwrap_err();
        let shown = sweep_spec::text::escape(key);
        assert!(err.starts_with(&format!("p.toml: key `params.{shown}`: expected a parameter name")), "{err:?}");
        assert!(!err.contains(['\u{1b}', '\u{202e}', '\n']), "{err:?}");
        assert!(err.contains(&format!("got {}", sweep_spec::text::escape(&format!("{key:?}")))), "{err:?}");
    }
    let longest = "p".repeat(MAX_LEN);
    assert!(parse(&format!("[params]\n{longest} = 1\n")).is_ok());
    let err = parse(&format!("[params]\n{longest}x = 1\n")).unwrap_err();
    assert!(err.contains("expected a parameter name of 1 to 128 bytes"), "{err}");
}

#[test]
fn every_shipped_study_still_parses_and_expands() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("studies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let file = SweepFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
            expand(&file).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen} studies");
}
