//! `sweep validate FILE`: parse, check and expand, without contacting anyone.

use std::path::Path;
use sweep_spec::{SweepFile, TrialSpec};

/// Reads and expands a sweep file, then checks every trial's parameters the way its built-in
/// workload will before training (cross-parameter rules, optimizer and schedule tables), so no
/// trial fails for a reason the file already shows. `submit` and `local` load through here too.
pub fn load(path: &Path) -> anyhow::Result<(SweepFile, Vec<TrialSpec>)> {
    let file = SweepFile::read(path)?;
    let trials = sweep_spec::expand(&file)?;
    #[cfg(feature = "embedded-agent")]
    for trial in &trials {
        anyhow::Context::with_context(sweep_workloads::check_params(trial), || {
            format!("{}: trial {} ({}) would fail", path.display(), trial.id, set_params(trial))
        })?;
    }
    Ok((file, trials))
}

/// The trial's parameters that differ from its workload's defaults, as JSON.
#[cfg(feature = "embedded-agent")]
fn set_params(trial: &TrialSpec) -> serde_json::Value {
    let workload = sweep_spec::workloads::find(&trial.workload);
    let set =
        trial.params.iter().filter(|(k, v)| workload.and_then(|w| w.param(k)).is_none_or(|p| (p.default)() != **v));
    serde_json::Value::Object(set.map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub fn run(path: &Path, list: bool) -> anyhow::Result<()> {
    let (file, trials) = load(path)?;
    println!("{}: ok: sweep `{}`, workload `{}`, {} trials", path.display(), file.name, file.workload, trials.len());
    if list {
        for t in &trials {
            println!("  {}  {}", t.id, serde_json::Value::Object(t.params.clone()));
        }
    }
    Ok(())
}
