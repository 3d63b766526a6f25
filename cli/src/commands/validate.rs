//! `sweep validate FILE`: parse, check and expand, without contacting anyone. For a `command`
//! sweep it also looks for the program and the script files the command names, and warns (exit
//! 0) when they are missing here: agents run on other nodes, where they may exist.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use sweep_spec::text::escape;
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
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for warning in command_warnings(&file, base_dir, &path_var) {
        eprintln!("warning: {}: {warning}", path.display());
    }
    println!("{}: ok: sweep `{}`, workload `{}`, {} trials", path.display(), file.name, file.workload, trials.len());
    if let Some(plan) = &file.tpe {
        let names: Vec<&str> = plan.space.iter().map(|(k, _)| k.as_str()).collect();
        println!(
            "  search: tpe on `{}` ({}), {} trials in all: these {} drawn at random, the rest proposed by the coordinator from their results over {}",
            escape(&plan.objective.metric),
            if plan.objective.mode == sweep_spec::schedule::Mode::Min { "lower is better" } else { "higher is better" },
            plan.trials,
            trials.len(),
            escape(&names.join(", "))
        );
    }
    if let Some(schedule) = &file.schedule {
        println!("  {}", schedule.describe());
    }
    if list {
        for t in &trials {
            println!("  {}  {}", t.id, serde_json::Value::Object(t.params.clone()));
        }
    }
    Ok(())
}

/// Extensions of words that are scripts a program runs, checked like paths.
const SCRIPT_EXTENSIONS: &[&str] = &["py", "sh", "bash", "zsh", "r", "jl", "rb", "pl", "js", "lua", "ipynb"];

/// What in the command of `file` cannot run on this machine: a program neither on `path_var` nor
/// an executable file, an argument that looks like a file (a script extension, or a `/`) but does
/// not exist. The file's relative paths were resolved against `base_dir` when it was read, so what
/// is still relative did not exist there. Built-in workloads have no command: nothing to check.
pub fn command_warnings(file: &SweepFile, base_dir: &Path, path_var: &OsStr) -> Vec<String> {
    let Some((program, args)) = file.command.as_deref().and_then(<[String]>::split_first) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let missing = if program.contains('/') {
        let at = base_dir.join(program);
        if !at.exists() {
            Some(format!("no such file {}", at.display()))
        } else if !is_executable(&at) {
            Some(format!("{} is not an executable file", at.display()))
        } else {
            None
        }
    } else if !std::env::split_paths(path_var).any(|dir| is_executable(&dir.join(program))) {
        Some("not found on PATH".to_string())
    } else {
        None
    };
    if let Some(why) = missing {
        out.push(format!(
            "command[0] `{}`: {why}; agents whose nodes lack it too fail the trial at once",
            escape(program)
        ));
    }
    for (i, word) in args.iter().enumerate() {
        if looks_like_a_file(word) && !base_dir.join(word).exists() {
            out.push(format!(
                "command[{}] `{}`: no such file (relative paths resolve against the sweep file's folder {})",
                i + 1,
                escape(word),
                std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf()).display()
            ));
        }
    }
    out
}

/// A word the program will open as a file: a script by its extension, or a path with a `/`; not
/// a flag, an assignment or a URL.
fn looks_like_a_file(word: &str) -> bool {
    if word.starts_with('-') || word.contains('=') || word.contains("://") {
        return false;
    }
    let script = Path::new(word)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    script || word.contains('/')
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(dir: &Path, command: &str) -> SweepFile {
        let text = format!("name = \"s\"\nworkload = \"command\"\ncommand = {command}\n[grid]\nlr = [1]\n");
        SweepFile::parse(&text, &dir.join("sweep.toml"), dir).unwrap()
    }

    /// A real folder with a real script and a real program on a PATH of our own.
    #[test]
    fn misspelled_programs_and_missing_scripts_are_named_and_the_rest_passes() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("python3"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("python3"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("train.py"), "print(1)\n").unwrap();
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        let path_var = bin.as_os_str();

        let ok = sweep(dir.path(), r#"["python3", "train.py", "--data", "a/b=c", "https://x/y", "-m"]"#);
        assert_eq!(command_warnings(&ok, dir.path(), path_var), Vec::<String>::new());

        let typo = sweep(dir.path(), r#"["pyhton3", "trian.py", "conf/missing.yaml"]"#);
        let warnings = command_warnings(&typo, dir.path(), path_var);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].starts_with("command[0] `pyhton3`: not found on PATH"), "{}", warnings[0]);
        assert!(warnings[1].starts_with("command[1] `trian.py`: no such file"), "{}", warnings[1]);
        assert!(warnings[1].contains(&dir.path().display().to_string()), "{}", warnings[1]);
        assert!(warnings[2].starts_with("command[2] `conf/missing.yaml`"), "{}", warnings[2]);

        // A program given as a path resolves against the sweep file's folder.
        let script = sweep(dir.path(), r#"["./run.sh"]"#);
        let warnings = command_warnings(&script, dir.path(), path_var);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("is not an executable file"), "{}", warnings[0]);
        std::fs::set_permissions(dir.path().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(command_warnings(&script, dir.path(), path_var), Vec::<String>::new());
        let gone = sweep(dir.path(), r#"["./nope.sh"]"#);
        assert!(command_warnings(&gone, dir.path(), path_var)[0].contains("no such file"));
    }

    #[test]
    fn built_in_workloads_have_no_command_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name = \"s\"\nworkload = \"mlp\"\n[grid]\nseed = [1]\n";
        let file = SweepFile::parse(text, &dir.path().join("s.toml"), dir.path()).unwrap();
        assert!(command_warnings(&file, dir.path(), OsStr::new("")).is_empty());
    }
}
