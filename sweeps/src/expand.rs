//! Expansion of a sweep file into trials: grid (cartesian product, last key fastest) crossed with
//! `random.samples` draws, each merged over the workload defaults and `[params]`.

use crate::error::SpecError;
use crate::file::SweepFile;
use crate::sample::SplitMix64;
use crate::trial::TrialSpec;
use crate::workloads;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Refuse sweeps that would not fit in a coordinator's memory or a user's patience.
pub const MAX_TRIALS: usize = 1_000_000;

pub fn expand(file: &SweepFile) -> Result<Vec<TrialSpec>, SpecError> {
    let grid_size =
        file.grid.iter().try_fold(1usize, |acc, (_, values)| acc.checked_mul(values.len())).unwrap_or(usize::MAX);
    let samples = file.random.as_ref().map_or(1, |r| r.samples as usize);
    let total = grid_size.saturating_mul(samples);
    if total > MAX_TRIALS {
        return Err(SpecError::invalid(&file.path, "grid", format!("at most {MAX_TRIALS} trials, got {total}")));
    }

    let mut base = workloads::find(&file.workload).map(|w| w.defaults()).unwrap_or_default();
    base.extend(file.params.clone());

    let draws: Vec<Map<String, Value>> = match &file.random {
        None => vec![Map::new()],
        Some(r) => {
            let mut rng = SplitMix64::new(r.seed);
            (0..r.samples).map(|_| crate::sample::draw(&r.dists, &r.when, &mut rng)).collect()
        }
    };

    let mut trials = Vec::with_capacity(total);
    let mut seen = HashSet::with_capacity(total);
    for point in 0..grid_size {
        let grid_values = grid_point(file, point);
        for draw in &draws {
            let mut params = base.clone();
            params.extend(grid_values.iter().cloned());
            params.extend(draw.clone());
            let id = TrialSpec::content_id(&file.workload, file.command.as_deref(), &params, file.data.as_ref());
            // Duplicate grid values (`width = [4, 4]`) name the same trial: keep one.
            if !seen.insert(id.clone()) {
                continue;
            }
            trials.push(TrialSpec {
                id,
                sweep: file.name.clone(),
                index: trials.len() as u32,
                workload: file.workload.clone(),
                command: file.command.clone(),
                params,
                data: file.data.clone(),
                resources: file.resources,
                checkpoint_every_epochs: file.retry.checkpoint_every_epochs,
                command_bool: file.command_bool,
                copy_from: None,
            });
        }
    }
    check_draws(file, &trials)?;
    check_schedule(file, &trials)?;
    if !file.resources.fuse.is_off() {
        for trial in &trials {
            crate::fusion::key(trial).map_err(|e| {
                SpecError::invalid(
                    &file.path,
                    "resources.fuse",
                    format!("trials that can fuse; trial {}: {e}", trial.id),
                )
            })?;
        }
    }
    Ok(trials)
}

/// A random draw is checked against the workload catalogue like any other value (the sweep file
/// checks the bounds it can, `file::check_param_names`): a draw outside a parameter's domain
/// would fail its trial at run time.
fn check_draws(file: &SweepFile, trials: &[TrialSpec]) -> Result<(), SpecError> {
    let (Some(random), Some(workload)) = (&file.random, workloads::find(&file.workload)) else {
        return Ok(());
    };
    for (key, _) in &random.dists {
        let Some(param) = workload.param(key) else { continue };
        for trial in trials {
            // A conditional parameter left out has the workload's default.
            let Some(drawn) = trial.params.get(key.as_str()) else { continue };
            if param.check(drawn).is_err() {
                return Err(SpecError::invalid(
                    &file.path,
                    &format!("{}.{key}", random.section),
                    format!(
                        "a range inside {}, but trial {} drew {drawn}",
                        param.domain.describe(param.kind),
                        trial.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every trial must train at least to the schedule's `max_epochs` and report at each of its rungs.
/// A trial's `epochs` and `eval_every` are read where it has them (every built-in workload that
/// trains in epochs; a `command` trial that takes an `epochs` parameter).
fn check_schedule(file: &SweepFile, trials: &[TrialSpec]) -> Result<(), SpecError> {
    let Some(schedule) = &file.schedule else { return Ok(()) };
    let int = |t: &TrialSpec, key: &str| t.params.get(key).and_then(Value::as_u64);
    for trial in trials {
        if let Some(epochs) = int(trial, "epochs") {
            if epochs < u64::from(schedule.max_epochs()) {
                return Err(SpecError::invalid(
                    &file.path,
                    "schedule.max_epochs",
                    format!(
                        "at most the trials' epochs; trial {} trains {epochs} epochs, below {}",
                        trial.id,
                        schedule.max_epochs()
                    ),
                ));
            }
        }
        if let Some(every) = int(trial, "eval_every").filter(|e| *e > 1) {
            let bracket = schedule.bracket(trial.index);
            if let Some(rung) = schedule.rungs(bracket).into_iter().find(|r| u64::from(*r) % every != 0) {
                let key = match schedule.rule {
                    crate::schedule::Rule::Asha(_) => "schedule.min_epochs",
                    crate::schedule::Rule::Median(_) => "schedule.every",
                    crate::schedule::Rule::Pbt(_) => "schedule.interval",
                };
                return Err(SpecError::invalid(
                    &file.path,
                    key,
                    format!(
                        "rungs the trials report at; trial {} evaluates every {every} epochs (eval_every), not at the rung at epoch {rung}",
                        trial.id
                    ),
                ));
            }
        }
        // PBT perturbs what each trial has: a parameter it never had would only add one.
        for (name, _) in schedule.pbt().map_or(&[][..], |p| &p.perturb[..]) {
            if crate::schedule::pbt::get(&trial.params, name).is_none() {
                return Err(SpecError::invalid(
                    &file.path,
                    &format!("schedule.perturb.{name}"),
                    format!(
                        "a parameter of the trials (a dotted name is a key of a table parameter); trial {} has none",
                        trial.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The grid values of point `index`, decoded as a mixed-radix number with the last key fastest.
fn grid_point(file: &SweepFile, mut index: usize) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(file.grid.len());
    for (key, values) in file.grid.iter().rev() {
        out.push((key.clone(), values[index % values.len()].clone()));
        index /= values.len();
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<SweepFile, SpecError> {
        SweepFile::parse(text, Path::new("sweeps/t.toml"), Path::new("/tmp"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const MLP: &str = r#"
        name = "dd"
        workload = "mlp"
        [params]
        hidden_trainable = false
        optimizer = { name = "adam", lr = 1e-4 }
        [grid]
        width = [10, 20, 40]
        seed = [0, 1]
    "#;

    #[test]
    fn grid_is_a_cartesian_product_with_defaults_resolved() {
        let trials = expand(&parse(MLP).unwrap()).unwrap();
        assert_eq!(trials.len(), 6);
        let order: Vec<(i64, i64)> =
            trials.iter().map(|t| (t.params["width"].as_i64().unwrap(), t.params["seed"].as_i64().unwrap())).collect();
        assert_eq!(order, vec![(10, 0), (10, 1), (20, 0), (20, 1), (40, 0), (40, 1)]);
        let t = &trials[0];
        assert_eq!(t.params["depth"], Value::from(1), "defaults are filled in");
        assert_eq!(t.params["hidden_trainable"], Value::from(false));
        assert_eq!(t.params["optimizer"]["lr"].as_f64(), Some(1e-4));
        assert_eq!(trials.iter().map(|t| t.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn ids_are_stable_and_only_new_trials_are_new() {
        let a = expand(&parse(MLP).unwrap()).unwrap();
        let b = expand(&parse(MLP).unwrap()).unwrap();
        assert_eq!(a, b);
        let wider = expand(&parse(&MLP.replace("[10, 20, 40]", "[10, 20, 40, 80]")).unwrap()).unwrap();
        let old: HashSet<_> = a.iter().map(|t| t.id.clone()).collect();
        let new: Vec<_> = wider.iter().filter(|t| !old.contains(&t.id)).collect();
        assert_eq!(new.len(), 2);
        assert!(new.iter().all(|t| t.params["width"] == 80));
    }

    #[test]
    fn random_search_is_reproducible_and_crossed_with_the_grid() {
        let text = r#"
            name = "r"
            workload = "command"
            command = ["python3", "train.py"]
            [grid]
            depth = [1, 2]
            [random]
            samples = 5
            seed = 11
            lr = { log_uniform = [1e-5, 1e-2] }
            opt = { choice = ["sgd", "adam"] }
            layers = { int_uniform = [1, 3] }
            drop = { uniform = [0.0, 0.5] }
        "#;
        let a = expand(&parse(text).unwrap()).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a, expand(&parse(text).unwrap()).unwrap());
        let lr_at = |t: &TrialSpec| t.params["lr"].as_f64().unwrap();
        // The same five draws appear under each grid value.
        assert_eq!(lr_at(&a[0]), lr_at(&a[5]));
        assert!(a.iter().all(|t| (1e-5..=1e-2).contains(&lr_at(t))));
        let other_seed = expand(&parse(&text.replace("seed = 11", "seed = 12")).unwrap()).unwrap();
        assert_ne!(lr_at(&a[0]), lr_at(&other_seed[0]));
    }

    #[test]
    fn duplicate_grid_values_collapse() {
        let trials = expand(&parse(&MLP.replace("[10, 20, 40]", "[10, 10]")).unwrap()).unwrap();
        assert_eq!(trials.len(), 2);
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        assert_eq!(err("workload = \"mlp\""), "sweeps/t.toml: key `name`: expected a string (missing)");
        // Built-in workloads follow `double_descent` in catalogue order; the test does not pin them.
        let unknown = err("name = \"a\"\nworkload = \"resnet\"");
        assert!(unknown.contains("key `workload`: expected one of command, mlp, double_descent"), "{unknown}");
        assert!(unknown.ends_with("got \"resnet\""), "{unknown}");
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[grid]\nwidth = 3")
            .contains("key `grid.width`: expected a non-empty array"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[params]\nwidht = 3")
            .contains("key `params.widht`: expected a parameter of workload `mlp`"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[params]\nwidth = \"big\"")
            .contains("key `params.width`: expected an integer"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[params]\nwidth = 3\n[grid]\nwidth = [1]")
            .contains("already set by `params.width`"));
        assert!(err("name = \"a\"\nworkload = \"command\"").contains("key `command`"));
        assert!(err("name = \"a b\"\nworkload = \"mlp\"").contains("key `name`"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[retry]\nmax_attempts = 0")
            .contains("key `retry.max_attempts`: expected a positive integer"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\n[random]\nsamples = 2\nlr = { log_uniform = [0, 1] }")
            .contains("key `random.lr.log_uniform`: expected 0 < lo < hi"));
        assert!(err("name = \"a\"\nworkload = \"mlp\"\nepochs = 3").contains("key `epochs`: expected one of name"));
        assert!(err("name = [").starts_with("sweeps/t.toml: not valid TOML"));
    }

    #[test]
    fn command_bool_is_checked_and_reaches_every_trial() {
        let base = "name = \"b\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\namp = [true, false]\n";
        let file = |extra: &str| SweepFile::parse(&format!("{extra}\n{base}"), Path::new("b.toml"), Path::new("."));
        let flagged = expand(&file("command_bool = \"flag\"").unwrap()).unwrap();
        assert!(flagged.iter().all(|t| t.command_bool == crate::CommandBool::Flag));
        let plain = expand(&file("").unwrap()).unwrap();
        assert!(plain.iter().all(|t| t.command_bool == crate::CommandBool::Value));
        assert_eq!(flagged[0].id, plain[0].id, "how booleans are passed is not part of the trial id");
        let err = file("command_bool = \"switch\"").unwrap_err().to_string();
        assert!(err.contains("b.toml") && err.contains("key `command_bool`") && err.contains("\"flag\""), "{err}");
        let err = file("command_bool = true").unwrap_err().to_string();
        assert!(err.contains("key `command_bool`"), "{err}");
        let builtin = "name = \"m\"\nworkload = \"mlp\"\ncommand_bool = \"flag\"\n";
        let err = SweepFile::parse(builtin, Path::new("m.toml"), Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("key `command_bool`") && err.contains("workload = \"command\""), "{err}");
    }

    #[test]
    fn command_paths_resolve_against_the_sweep_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.py"), "").unwrap();
        let text =
            "name = \"c\"\nworkload = \"command\"\ncommand = [\"python3\", \"train.py\", \"--fast\", \"./bin/x\"]";
        let f = SweepFile::parse(text, &dir.path().join("s.toml"), dir.path()).unwrap();
        let cmd = f.command.unwrap();
        assert_eq!(cmd[0], "python3");
        assert_eq!(Path::new(&cmd[1]), dir.path().join("train.py"));
        assert_eq!(cmd[2], "--fast");
        assert_eq!(cmd[3], "./bin/x", "arguments that name no file stay as written");
        let prog = SweepFile::parse(
            "name = \"c\"\nworkload = \"command\"\ncommand = [\"./run.sh\"]",
            &dir.path().join("s.toml"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(Path::new(&prog.command.unwrap()[0]), dir.path().join("run.sh"));
    }

    #[test]
    fn too_many_trials_is_refused() {
        let text = "name = \"big\"\nworkload = \"command\"\ncommand = [\"true\"]\n[grid]\na = [1,2,3,4,5,6,7,8,9,10]\nb = [1,2,3,4,5,6,7,8,9,10]\nc = [1,2,3,4,5,6,7,8,9,10]\nd = [1,2,3,4,5,6,7,8,9,10]\ne = [1,2,3,4,5,6,7,8,9,10]\nf = [1,2,3,4,5,6,7,8,9,10,11]";
        assert!(expand(&parse(text).unwrap()).unwrap_err().to_string().contains("at most 1000000 trials"));
    }
}
