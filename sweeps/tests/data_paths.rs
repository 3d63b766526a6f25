//! Paths in `[data]` resolve against the sweep file's folder, so a study runs from any directory.

use std::path::Path;
use sweep_spec::SweepFile;

fn parse(data: &str) -> Result<SweepFile, String> {
    let text = format!("name = \"d\"\nworkload = \"mlp\"\n[data]\n{data}\n");
    SweepFile::parse(&text, Path::new("/studies/x.toml"), Path::new("/studies")).map_err(|e| e.to_string())
}

#[test]
fn relative_data_paths_resolve_against_the_sweep_folder() {
    let file = parse("format = \"xc\"\ntrain = \"data/train.txt\"\ntest = \"/abs/test.txt\"\nroot = \"../imagenet\"\nimbalance_ratio = 100")
        .unwrap();
    let data = file.data.unwrap();
    assert_eq!(data.options["train"], "/studies/data/train.txt");
    assert_eq!(data.options["test"], "/abs/test.txt");
    assert_eq!(data.options["root"], "/studies/../imagenet");
    assert_eq!(data.options["imbalance_ratio"], 100);
}

#[test]
fn a_path_key_that_is_not_a_string_is_named() {
    let err = parse("format = \"xc\"\ntrain = 3").unwrap_err();
    assert!(err.contains("data.train"), "{err}");
}
