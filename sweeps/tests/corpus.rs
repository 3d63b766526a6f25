//! Parses every sweep file in `tests/corpus/` one by one. Each file says what it expects in a
//! leading comment: `# expect-trials: N` (and `# expect-first-id: ID` to pin content ids across
//! versions) for a valid file, `# expect-error: TEXT` for one that parsing or expansion refuses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use sweep_spec::{expand, SweepFile};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The value of `# <key>: value` in the file's comments (read as bytes: one file is not UTF-8).
fn expectation(path: &Path, key: &str) -> Option<String> {
    let bytes = std::fs::read(path).expect("corpus file reads");
    let prefix = format!("# {key}: ");
    String::from_utf8_lossy(&bytes).lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

#[test]
fn every_corpus_file_parses_or_fails_as_it_says() {
    let files = corpus();
    assert!(files.len() >= 12, "the corpus has {} files", files.len());
    for path in files {
        let name = path.display();
        let outcome = SweepFile::read(&path).and_then(|f| expand(&f).map(|t| (f, t)));
        match (expectation(&path, "expect-trials"), expectation(&path, "expect-error")) {
            (Some(n), None) => {
                let (file, trials) = outcome.unwrap_or_else(|e| panic!("{name}: expected to expand, got: {e}"));
                assert_eq!(trials.len(), n.parse::<usize>().expect("a count"), "{name}: number of trials");
                let again = expand(&SweepFile::read(&path).unwrap()).unwrap();
                assert_eq!(trials, again, "{name}: expansion is stable");
                assert_eq!(expand(&file).unwrap(), trials, "{name}: expanding twice gives the same trials");
                let ids: HashSet<_> = trials.iter().map(|t| t.id.0.clone()).collect();
                assert_eq!(ids.len(), trials.len(), "{name}: ids are unique");
                for id in &ids {
                    assert!(sweep_spec::file::is_safe_name(id) && id.len() == 16, "{name}: id {id}");
                    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{name}: id {id}");
                }
                let first = &trials[0].id.0;
                match expectation(&path, "expect-first-id") {
                    Some(pinned) => assert_eq!(first, &pinned, "{name}: content ids changed"),
                    None => panic!("{name}: add `# expect-first-id: {first}`"),
                }
            }
            (None, Some(text)) => {
                let err = outcome.err().unwrap_or_else(|| panic!("{name}: expected an error containing {text:?}"));
                let message = err.to_string();
                assert!(message.starts_with(&path.display().to_string()), "{name}: error names the file: {message}");
                assert!(message.contains(&text), "{name}: expected {text:?} in: {message}");
            }
            _ => panic!("{name}: needs exactly one of `# expect-trials: N` or `# expect-error: TEXT`"),
        }
    }
}
