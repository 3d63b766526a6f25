//! The cluster in containers: `deploy/docker/compose.yaml` started from the images `make images`
//! builds, one coordinator and three agents on a private Docker network, with the `sweep` CLI on
//! the host. First a built-in workload (libtorch inside the agent image), then one sweep of
//! resumable `command` trials per fault, each judged by the chaos suite's checks (no duplicate
//! row, no missing epoch, no retried attempt starting before its checkpoint, every trial
//! succeeded):
//! - an agent disconnected from the network for 2.5× the lease TTL, then reconnected;
//! - an agent frozen (`docker pause`) past the lease TTL, then thawed: its late reports are fenced;
//! - the coordinator container killed and started again on the same volume;
//! - an agent container removed for good: its trial resumes elsewhere from the shared checkpoints.
//!
//! Skipped (with the reason) without a Docker daemon, the images or root, unless
//! `SWEEP_REQUIRE_DOCKER` is set, as `make test` does as root after `make images`.

use std::path::Path;
use std::time::{Duration, Instant};
use sweep_coordinator::results;
use sweep_e2e::check::{check_results, Findings};
use sweep_e2e::compose::{docker, unavailable, ComposeCluster};
use sweep_e2e::run::{script, ChaosConfig};

/// Short, so that the faults outlast it quickly; the agents heartbeat well within it.
const TTL: Duration = Duration::from_secs(3);
const AGENTS: usize = 3;
const TRIALS: u32 = 6;
const EPOCHS: u32 = 14;
/// The trial script as the agents see it, on the shared volume.
const TRAIN: &str = "/shared/train.sh";

#[test]
fn a_sweep_in_containers_loses_nothing_to_docker_faults() {
    if let Some(why) = unavailable() {
        assert!(std::env::var_os("SWEEP_REQUIRE_DOCKER").is_none(), "SWEEP_REQUIRE_DOCKER is set, but {why}");
        eprintln!("skipped: {why} (SWEEP_REQUIRE_DOCKER=1 makes this test required)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = ComposeCluster::start(dir.path(), AGENTS, TTL);
    let mut chaos = ChaosConfig::bounded();
    chaos.epochs = EPOCHS;
    std::fs::write(cluster.shared().join("train.sh"), script(&chaos)).expect("write train.sh");

    let mut table = vec![builtin_workload(&cluster, dir.path())];

    table.push(phase(&mut cluster, dir.path(), "disconnect", |c, agent| {
        let network = c.network();
        docker(&["network", "disconnect", &network, agent]);
        std::thread::sleep(TTL.mul_f64(2.5));
        docker(&["network", "connect", &network, agent]);
    }));

    table.push(phase(&mut cluster, dir.path(), "pause", |c, agent| {
        c.pause(agent);
        std::thread::sleep(TTL.mul_f64(2.5));
        c.unpause(agent);
    }));
    // An agent cut off or frozen past the TTL loses its lease, so its trial starts again elsewhere.
    // (A coordinator down for less than the TTL may cost no lease: no such check below.)
    for row in &table[1..] {
        assert!(
            row.retried > 0,
            "{}: no trial needed a second attempt, so the fault hit nothing: {}",
            row.fault,
            row.line()
        );
    }
    let thawed = cluster.container_log(&last_agent(&table));
    assert!(
        thawed.contains("lease lost") || thawed.contains("refused"),
        "the thawed agent's late reports were not fenced (no `lease lost` or refusal in its log):\n{thawed}"
    );

    table.push(phase(&mut cluster, dir.path(), "coordinator-kill", |c, _| {
        let coordinator = c.coordinator();
        docker(&["kill", &coordinator]);
        std::thread::sleep(Duration::from_secs(2));
        // `docker start` is a no-op if the restart policy already brought it back.
        docker(&["start", &coordinator]);
    }));

    let removed = phase(&mut cluster, dir.path(), "agent-removed", |_, agent| {
        // Let it train and checkpoint a few epochs first, so that resuming matters.
        std::thread::sleep(Duration::from_secs(2));
        docker(&["rm", "-f", agent]);
    });
    assert!(
        removed.findings.retried_attempts_with_rows > 0,
        "no trial of the removed agent was resumed elsewhere: {}",
        removed.line()
    );
    table.push(removed);

    eprintln!(
        "| fault | seconds | trials | rows | retried attempts | with rows | duplicates | missing epochs | rewound |"
    );
    for row in &table {
        eprintln!("{}", row.line());
    }
}

/// One sweep's figures.
struct Row {
    fault: &'static str,
    agent: String,
    seconds: f64,
    retried: u64,
    findings: Findings,
}

impl Row {
    fn line(&self) -> String {
        let f = &self.findings;
        format!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault,
            self.seconds,
            f.trials,
            f.rows,
            self.retried,
            f.retried_attempts_with_rows,
            f.duplicate_rows,
            f.missing_epochs,
            f.rewound_attempts
        )
    }
}

fn last_agent(table: &[Row]) -> String {
    table.last().expect("a phase ran").agent.clone()
}

/// Submits a sweep of resumable trials named after the fault, injects the fault on the agent of a
/// running trial once one runs, waits for the sweep to finish and checks its Parquet.
fn phase(
    cluster: &mut ComposeCluster,
    root: &Path,
    fault: &'static str,
    inject: impl FnOnce(&mut ComposeCluster, &str),
) -> Row {
    let started = Instant::now();
    let grid: Vec<String> = (0..TRIALS).map(|i| i.to_string()).collect();
    let file = root.join(format!("{fault}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{fault}\"\nworkload = \"command\"\ncommand = [\"/bin/sh\", \"{TRAIN}\"]\n\
             [retry]\nmax_attempts = 4\nmax_lost = 100\n[grid]\ni = [{}]\n",
            grid.join(", ")
        ),
    )
    .expect("write the sweep file");
    submit(cluster, &file);
    let agent = cluster.agent_running(fault, Duration::from_secs(60));
    inject(cluster, &agent);
    let status = cluster.wait_done(fault, Duration::from_secs(120));
    let trials = status["trials"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = trials.iter().filter_map(|t| t["trial_id"].as_str().map(String::from)).collect();
    assert_eq!(ids.len(), TRIALS as usize, "{fault}: status lists {} trials", ids.len());
    let retried = trials.iter().map(|t| t["attempts"].as_u64().unwrap_or(1).saturating_sub(1)).sum();
    let findings = judged(cluster, fault, &ids, EPOCHS);
    let row = Row { fault, agent, seconds: started.elapsed().as_secs_f64(), retried, findings };
    assert!(
        row.findings.is_clean() && row.findings.trials == TRIALS as usize,
        "{fault}: {}\nproblems:\n  {}\n{}",
        row.line(),
        row.findings.problems.join("\n  "),
        cluster.logs(30)
    );
    row
}

/// A built-in workload (the quickstart's random-features MLP on libtorch) on the agent image: every
/// trial succeeds with a finite test error in the Parquet.
fn builtin_workload(cluster: &ComposeCluster, root: &Path) -> Row {
    let started = Instant::now();
    let file = root.join("builtin.toml");
    std::fs::write(
        &file,
        "name = \"builtin\"\nworkload = \"mlp\"\n[params]\nhidden_trainable = false\nn = 100\nn_test = 200\n\
         dim = 5\nclasses = 4\n[grid]\nwidth = [10, 100, 400]\n",
    )
    .expect("write the sweep file");
    submit(cluster, &file);
    let status = cluster.wait_done("builtin", Duration::from_secs(120));
    let trials = status["trials"].as_array().cloned().unwrap_or_default();
    assert!(
        trials.len() == 3 && trials.iter().all(|t| t["state"] == "succeeded"),
        "the built-in workload in the agent image: {trials:#?}\n{}",
        cluster.logs(30)
    );
    let dir = results::sweep_dir(&cluster.results_dir(), "builtin");
    let until = Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = results::read_metrics(&dir).unwrap_or_default();
        let errors: Vec<_> = rows.iter().filter(|r| r.metric == "test_error" && r.value.is_finite()).collect();
        if errors.len() == trials.len() || Instant::now() > until {
            assert_eq!(errors.len(), trials.len(), "one finite test_error per trial in {}", dir.display());
            break rows;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let findings = Findings { trials: trials.len(), rows: rows.len(), ..Findings::default() };
    Row {
        fault: "none (built-in mlp)",
        agent: String::new(),
        seconds: started.elapsed().as_secs_f64(),
        retried: 0,
        findings,
    }
}

fn submit(cluster: &ComposeCluster, file: &Path) {
    let out = cluster.sweep(&["submit", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "sweep submit {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
}

/// The chaos suite's checks on the sweep's Parquet, once the coordinator's flush has caught up.
fn judged(cluster: &ComposeCluster, sweep: &str, ids: &[String], epochs: u32) -> Findings {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        match check_results(&cluster.results_dir(), sweep, ids, epochs, false) {
            Ok(f) if f.is_clean() || Instant::now() > until => return f,
            Err(e) if Instant::now() > until => panic!("{sweep}: reading its results: {e}"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}
