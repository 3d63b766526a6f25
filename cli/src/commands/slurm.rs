//! `sweep slurm agents`: the agent batch script of `deploy/slurm/agents.sbatch`, sized for a job
//! (nodes, GPUs per node, time, partition) with the coordinator and work folder filled in, printed
//! or handed straight to `sbatch`.

use crate::client::Remote;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// The script users can also submit by hand; sizing flags only change its `#SBATCH` lines.
const AGENTS_SBATCH: &str = include_str!("../../../deploy/slurm/agents.sbatch");

#[derive(Subcommand, Debug)]
pub enum SlurmCommand {
    /// Print (or submit with --submit) a batch script that runs one sweep-agent per node.
    Agents(AgentsArgs),
}

#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// Nodes, one agent each.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// GPUs per node (`--gres=gpu:N`); 0 for CPU nodes.
    #[arg(long, default_value_t = 0)]
    gpus_per_node: u32,
    /// Time limit; agents drain and checkpoint 120 s before it.
    #[arg(long, default_value = "24:00:00")]
    time: String,
    #[arg(long)]
    partition: Option<String>,
    /// A folder on a filesystem all nodes share: checkpoints and trial logs.
    #[arg(long, env = "SWEEP_WORK_DIR")]
    work_dir: PathBuf,
    /// Run `sbatch` on the script instead of printing it.
    #[arg(long)]
    submit: bool,
}

/// The script with this job's `#SBATCH` lines and defaults for the coordinator and work folder
/// (still overridable with `sbatch --export`).
pub fn render(a: &AgentsArgs, coordinator: &str) -> String {
    let mut out = String::with_capacity(AGENTS_SBATCH.len() + 256);
    for line in AGENTS_SBATCH.lines() {
        let replaced = if line.starts_with("#SBATCH --nodes=") {
            format!("#SBATCH --nodes={}", a.nodes)
        } else if line.starts_with("##SBATCH --gres=gpu:") || line.starts_with("#SBATCH --gres=gpu:") {
            if a.gpus_per_node > 0 {
                format!("#SBATCH --gres=gpu:{}", a.gpus_per_node)
            } else {
                line.to_string()
            }
        } else if line.starts_with("#SBATCH --time=") {
            let mut l = format!("#SBATCH --time={}", a.time);
            if let Some(p) = &a.partition {
                l.push_str(&format!("\n#SBATCH --partition={p}"));
            }
            l
        } else if line == "set -uo pipefail" {
            format!(
                "set -uo pipefail\n# Written by `sweep slurm agents`; sbatch --export still overrides these.\n: \"${{SWEEP_COORDINATOR:={coordinator}}}\"\n: \"${{SWEEP_WORK_DIR:={}}}\"",
                a.work_dir.display()
            )
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

pub fn run(cmd: SlurmCommand, remote: &Remote) -> anyhow::Result<()> {
    let SlurmCommand::Agents(a) = cmd;
    let script = render(&a, &remote.url);
    if !a.submit {
        print!("{script}");
        return Ok(());
    }
    let path = std::env::temp_dir().join(format!("sweep-agents-{}.sbatch", std::process::id()));
    std::fs::write(&path, &script)?;
    let out = std::process::Command::new("sbatch").arg("--parsable").arg("--export=ALL").arg(&path).output().map_err(
        |e| anyhow::anyhow!("running sbatch: {e} (is Slurm installed here? print the script without --submit)"),
    )?;
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(out.status.success(), "sbatch failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u32, gpus: u32) -> AgentsArgs {
        AgentsArgs {
            nodes,
            gpus_per_node: gpus,
            time: "2:00:00".into(),
            partition: Some("gpu".into()),
            work_dir: "/shared/me/sweep".into(),
            submit: false,
        }
    }

    #[test]
    fn sizes_the_job_and_fills_in_the_coordinator() {
        let s = render(&args(4, 8), "http://login1:50051");
        assert!(s.lines().any(|l| l == "#SBATCH --nodes=4"), "{s}");
        assert!(s.lines().any(|l| l == "#SBATCH --gres=gpu:8"));
        assert!(s.lines().any(|l| l == "#SBATCH --time=2:00:00"));
        assert!(s.lines().any(|l| l == "#SBATCH --partition=gpu"));
        assert!(s.contains(": \"${SWEEP_COORDINATOR:=http://login1:50051}\""));
        assert!(s.contains(": \"${SWEEP_WORK_DIR:=/shared/me/sweep}\""));
        assert!(s.lines().any(|l| l == "#SBATCH --signal=B:USR1@120"), "the drain warning stays");
        let cpu = render(&args(1, 0), "http://x:1");
        assert!(!cpu.lines().any(|l| l.starts_with("#SBATCH --gres")), "CPU nodes ask for no GPUs");
    }

    #[test]
    fn the_script_is_valid_bash() {
        let dir = std::env::temp_dir().join(format!("sweep-slurm-test-{}.sh", std::process::id()));
        std::fs::write(&dir, render(&args(2, 4), "http://x:1")).unwrap();
        let status = std::process::Command::new("bash").arg("-n").arg(&dir).status().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(status.success());
    }
}
