//! `sweep validate FILE`: parse, check and expand, without contacting anyone.

use std::path::Path;
use sweep_spec::SweepFile;

pub fn run(path: &Path, list: bool) -> anyhow::Result<()> {
    let file = SweepFile::read(path)?;
    let trials = sweep_spec::expand(&file)?;
    println!("{}: ok: sweep `{}`, workload `{}`, {} trials", path.display(), file.name, file.workload, trials.len());
    if list {
        for t in &trials {
            println!("  {}  {}", t.id, serde_json::Value::Object(t.params.clone()));
        }
    }
    Ok(())
}
