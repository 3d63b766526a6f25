//! One chaos run from start to verdict: write the resumable trial script and the sweep file, start
//! the cluster, inject the seeded faults while the sweep runs, wait for it to finish, and check the
//! Parquet. Sizes come from [`ChaosConfig`], which the bounded test and the soak fill differently.

use crate::check::{check_results, Findings};
use crate::cluster::{Cluster, ClusterConfig};
use crate::faults::{schedule, Fault, FaultCounts, FaultLog, Rng};
use crate::replay::{replay_burst, CHECKPOINT_FILE};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a run's size and pace depend on.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    pub trials: u32,
    pub epochs: u32,
    /// Sleep per epoch in the trial script.
    pub epoch_ms: u64,
    /// Sleep between printing an epoch and checkpointing it: the time a real trial spends on
    /// evaluation and saving, during which the agent relays the line.
    pub checkpoint_lag_ms: u64,
    pub faults: FaultCounts,
    pub cluster: ClusterConfig,
    /// Pause between faults, drawn in this range.
    pub gap_ms: (u64, u64),
    /// How long a network cut lasts, as a multiple of the lease TTL.
    pub cut_ttls: f64,
    /// How long the coordinator stays dead, drawn in this range.
    pub coordinator_down_ms: (u64, u64),
    /// How long after the last fault the sweep may take to finish.
    pub finish_within: Duration,
    /// Run the sweep under an ASHA `[schedule]` judging each trial by its index (`score`, lower
    /// is better), so most trials are stopped early at a rung.
    pub asha: bool,
    /// With `asha`: pause trials below the cut and promote them later, rather than stop them.
    pub promote: bool,
    /// Let TPE choose the trials' scores (`[search] sampler = "tpe"`): the coordinator proposes
    /// all but the first ten while the faults land.
    pub tpe: bool,
    /// Run the sweep under PBT instead (`[schedule] type = "pbt"`, judged on `score` every
    /// [`PBT_INTERVAL`] epochs, perturbing `i`): the worst trials are replaced by copies of the
    /// best, each starting from the checkpoint its parent kept.
    pub pbt: bool,
}

/// Epochs between two PBT judgements in the chaos run.
pub const PBT_INTERVAL: u32 = 2;

impl ChaosConfig {
    /// The configuration CI runs: finishes in well under two minutes on two cores. No network cut:
    /// a cut past the TTL loses epochs today (see RELIABILITY.md); [`ChaosConfig::with_cut`] adds one.
    pub fn bounded() -> ChaosConfig {
        ChaosConfig {
            seed: 1,
            trials: 36,
            epochs: 10,
            epoch_ms: 250,
            checkpoint_lag_ms: 150,
            faults: FaultCounts { agent_kills: 6, coordinator_kills: 2, network_cuts: 0, replays: 1 },
            cluster: ClusterConfig {
                agents: 3,
                slots: 2,
                lease_ttl_ms: 1500,
                flush_interval_ms: 300,
                poll_interval_ms: 200,
            },
            gap_ms: (250, 800),
            cut_ttls: 2.5,
            coordinator_down_ms: (200, 800),
            finish_within: Duration::from_secs(60),
            asha: false,
            promote: false,
            tpe: false,
            pbt: false,
        }
    }

    /// The bounded run under an ASHA schedule. Stopped trials end the sweep sooner, so the faults
    /// come closer together.
    pub fn with_asha(mut self) -> ChaosConfig {
        self.asha = true;
        self.gap_ms = (self.gap_ms.0 / 2, self.gap_ms.1 / 2);
        self
    }

    /// The bounded run under an ASHA schedule that pauses trials below the cut and promotes them
    /// later: every trial trains in segments, one attempt per rung, resumed from its checkpoint.
    pub fn with_asha_promote(mut self) -> ChaosConfig {
        self.promote = true;
        self.with_asha()
    }

    /// The bounded run under PBT. Exploited trials end the sweep sooner, so the faults come
    /// closer together.
    pub fn with_pbt(mut self) -> ChaosConfig {
        self.pbt = true;
        self.gap_ms = (self.gap_ms.0 / 2, self.gap_ms.1 / 2);
        self
    }

    /// The trials proposed by TPE instead of listed in a grid.
    pub fn with_tpe(mut self) -> ChaosConfig {
        self.tpe = true;
        self
    }

    /// The bounded run plus one network cut of 2.5 × TTL.
    pub fn with_cut(mut self) -> ChaosConfig {
        self.faults.network_cuts = self.faults.network_cuts.max(1);
        self
    }

    /// The soak: the same run, bigger (network cuts only with `SWEEP_CHAOS_CUTS`).
    pub fn soak() -> ChaosConfig {
        ChaosConfig {
            trials: 200,
            epochs: 8,
            faults: FaultCounts { agent_kills: 50, coordinator_kills: 10, network_cuts: 0, replays: 8 },
            gap_ms: (300, 1200),
            finish_within: Duration::from_secs(180),
            ..ChaosConfig::bounded()
        }
    }

    /// Overrides from `SWEEP_CHAOS_*` variables (seed, sizes, fault counts).
    pub fn with_env(mut self) -> ChaosConfig {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(v) = num("SWEEP_CHAOS_SEED") {
            self.seed = v;
        }
        let set32 = |name: &str, field: &mut u32| {
            if let Some(v) = num(name) {
                *field = v as u32;
            }
        };
        set32("SWEEP_CHAOS_TRIALS", &mut self.trials);
        set32("SWEEP_CHAOS_EPOCHS", &mut self.epochs);
        set32("SWEEP_CHAOS_AGENTS", &mut self.cluster.agents);
        set32("SWEEP_CHAOS_SLOTS", &mut self.cluster.slots);
        set32("SWEEP_CHAOS_AGENT_KILLS", &mut self.faults.agent_kills);
        set32("SWEEP_CHAOS_COORDINATOR_KILLS", &mut self.faults.coordinator_kills);
        set32("SWEEP_CHAOS_CUTS", &mut self.faults.network_cuts);
        set32("SWEEP_CHAOS_REPLAYS", &mut self.faults.replays);
        // One knob for "more of everything": multiplies every fault count.
        if let Some(k) = num("SWEEP_CHAOS_FAULTS") {
            let f = &mut self.faults;
            for c in [&mut f.agent_kills, &mut f.coordinator_kills, &mut f.network_cuts, &mut f.replays] {
                *c = c.saturating_mul(k as u32);
            }
        }
        self
    }
}

/// The figures of one run, for the assertions and for RELIABILITY.md.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub trials: u32,
    pub epochs: u32,
    pub agent_kills: u32,
    pub coordinator_kills: u32,
    pub network_cuts: u32,
    pub replay_bursts: u32,
    pub replayed_reports: u32,
    pub replay_rows_duplicate: u32,
    pub stale_reports_refused: u32,
    pub faults_not_injected: u32,
    pub agent_self_exits: u32,
    /// Σ (attempts − 1) over trials, from `sweep status --json`.
    pub retried_attempts: u64,
    pub succeeded: u64,
    pub findings: Findings,
    pub replay_anomalies: Vec<String>,
    pub seconds: f64,
    /// Set when the sweep did not finish in time.
    pub stuck: Option<String>,
    pub fault_log: String,
    pub log_tails: String,
    pub root: String,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.stuck.is_none()
            && self.findings.is_clean()
            && self.replay_anomalies.is_empty()
            && self.succeeded + self.findings.stopped_early as u64 == self.findings.trials as u64
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        let f = &self.findings;
        format!(
            "seed={} trials={} epochs={} rows={} agent_kills={} coordinator_kills={} network_cuts={} replay_bursts={} \
             replayed_reports={} replay_dup_rows={} stale_refused={} retried_attempts={} retried_attempts_with_rows={} \
             succeeded={} stopped_early={} promoted={} copies={} bad_decisions={} failed={} duplicates={} missing_epochs={} rewound={} restarted_from_0={} misfiled={} \
             agent_self_exits={} not_injected={} seconds={:.1}",
            self.seed,
            self.trials,
            self.epochs,
            f.rows,
            self.agent_kills,
            self.coordinator_kills,
            self.network_cuts,
            self.replay_bursts,
            self.replayed_reports,
            self.replay_rows_duplicate,
            self.stale_reports_refused,
            self.retried_attempts,
            f.retried_attempts_with_rows,
            self.succeeded,
            f.stopped_early,
            f.promoted,
            f.copies,
            f.bad_decisions,
            f.failed_trials,
            f.duplicate_rows,
            f.missing_epochs,
            f.rewound_attempts,
            f.restarted_from_zero,
            f.misfiled_rows,
            self.agent_self_exits,
            self.faults_not_injected,
            self.seconds,
        )
    }

    /// Everything needed to understand a failure: figures, problems, fault log, log tails.
    pub fn failure_text(&self) -> String {
        format!(
            "chaos run failed (rerun with SWEEP_CHAOS_SEED={}); files kept in {}\n{}\nstuck: {:?}\nproblems:\n  {}\nreplay anomalies:\n  {}\n--- fault log\n{}\n{}",
            self.seed,
            self.root,
            self.summary(),
            self.stuck,
            self.findings.problems.iter().take(40).cloned().collect::<Vec<_>>().join("\n  "),
            self.replay_anomalies.join("\n  "),
            self.fault_log,
            self.log_tails
        )
    }
}

const SWEEP: &str = "chaos";

/// The trial: resume after the last checkpointed epoch, print each next epoch, then checkpoint it.
pub fn script(cfg: &ChaosConfig) -> String {
    let sec = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
    format!(
        r#"#!/bin/sh
# A chaos-suite trial: resumes after the epoch in $SWEEP_CHECKPOINT_DIR/{ck} (0 if none).
# Its score is its grid index (`--i N`): lower is better.
# Under a promoting schedule it trains only to $SWEEP_STOP_AFTER_EPOCH.
ck="$SWEEP_CHECKPOINT_DIR/{ck}"
score="$2"
last=0
end="${{SWEEP_STOP_AFTER_EPOCH:-{epochs}}}"
if [ -f "$ck" ]; then last=$(cat "$ck"); fi
echo "attempt $SWEEP_ATTEMPT resumes after epoch $last" >&2
e=$((last + 1))
while [ "$e" -le "$end" ]; do
  sleep {epoch}
  echo "{{\"epoch\": $e, \"metrics\": {{\"loss\": 0.$((100 - e)), \"attempt\": $SWEEP_ATTEMPT, \"score\": $score}}}}"
  sleep {lag}
  echo "$e" > "$ck.tmp.$$"
  mv "$ck.tmp.$$" "$ck"
  e=$((e + 1))
done
"#,
        ck = CHECKPOINT_FILE,
        epochs = cfg.epochs,
        epoch = sec(cfg.epoch_ms),
        lag = sec(cfg.checkpoint_lag_ms),
    )
}

fn sweep_file(script: &Path, cfg: &ChaosConfig) -> String {
    // Under the schedule the grid comes in a shuffled order of scores (7 is prime to the usual
    // sizes), and half the trials go on from each rung: trials are stopped at every rung, and
    // the sweep lasts long enough for the faults to land.
    let scheduled = cfg.asha || cfg.pbt;
    let index = |k: u32| if scheduled && !cfg.trials.is_multiple_of(7) { (k * 7) % cfg.trials } else { k };
    let grid: Vec<String> = (0..cfg.trials).map(|k| index(k).to_string()).collect();
    // TPE draws the scores from five times as many as there are trials.
    let trials = if cfg.tpe {
        format!(
            "[search]\nsampler = \"tpe\"\ntrials = {}\nseed = {}\nmetric = \"score\"\nmode = \"min\"\nspace = {{ i = {{ int_uniform = [0, {}] }} }}\n",
            cfg.trials,
            cfg.seed,
            cfg.trials * 5
        )
    } else {
        let objective = if scheduled { "[search]\nmetric = \"score\"\nmode = \"min\"\n" } else { "" };
        format!("[grid]\ni = [{}]\n{objective}", grid.join(", "))
    };
    let schedule = if cfg.pbt {
        format!(
            "[schedule]\ntype = \"pbt\"\ninterval = {PBT_INTERVAL}\nmax_epochs = {}\nperturb = {{ i = {{ int_uniform = [0, {}] }} }}\n",
            cfg.epochs,
            cfg.trials * 2
        )
    } else if cfg.asha {
        format!(
            "[schedule]\ntype = \"asha\"\nmin_epochs = 1\nmax_epochs = {}\nreduction_factor = 2\npromote = {}\n",
            cfg.epochs, cfg.promote
        )
    } else {
        String::new()
    };
    format!(
        "name = \"{SWEEP}\"\nworkload = \"command\"\ncommand = [\"/bin/sh\", \"{}\"]\n[retry]\nmax_attempts = 3\nmax_lost = 100\n{trials}{schedule}",
        script.display(),
    )
}

/// Runs the scenario in a temporary folder and panics with everything a reader needs when the run
/// breaks a rule; the folder is then kept.
pub fn run_and_judge(cfg: ChaosConfig) -> RunReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run_chaos(&cfg, dir.path());
    eprintln!("chaos: {}", report.summary());
    if !report.passed() {
        // Keep the logs, state and Parquet for whoever reads the failure.
        let kept = dir.keep();
        panic!("{}\n(files kept in {})", report.failure_text(), kept.display());
    }
    report
}

/// Runs the whole scenario in `root` and reports; panics only on harness errors (a binary that
/// cannot start, a file that cannot be written).
pub fn run_chaos(cfg: &ChaosConfig, root: &Path) -> RunReport {
    let started = Instant::now();
    let log = Arc::new(FaultLog::new());
    let mut rng = Rng::new(cfg.seed);
    let mut report = RunReport {
        seed: cfg.seed,
        trials: cfg.trials,
        epochs: cfg.epochs,
        root: root.display().to_string(),
        ..Default::default()
    };
    let script_path = root.join("train.sh");
    std::fs::write(&script_path, script(cfg)).expect("write train.sh");
    let sweep_path = root.join("chaos.toml");
    std::fs::write(&sweep_path, sweep_file(&script_path, cfg)).expect("write chaos.toml");

    let mut cluster = Cluster::start(root, cfg.cluster.clone(), log.clone());
    let out = cluster.sweep(&["submit", sweep_path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "sweep submit failed: {}", String::from_utf8_lossy(&out.stderr));
    log.note(format!("submitted {} trials", cfg.trials));

    let plan = schedule(cfg.faults, &mut rng);
    log.note(format!("fault plan: {plan:?}"));
    let mut done = false;
    for (k, fault) in plan.iter().enumerate() {
        let gap = Duration::from_millis(rng.range(cfg.gap_ms.0, cfg.gap_ms.1));
        done = pause_watching(&mut cluster, gap);
        if done {
            report.faults_not_injected = (plan.len() - k) as u32;
            log.note(format!("sweep done; {} faults left uninjected", plan.len() - k));
            break;
        }
        inject(*fault, cfg, &mut cluster, &mut rng, &log, &mut report);
    }

    // Let the sweep finish, keeping dead agents restarted.
    let deadline = Instant::now() + cfg.finish_within;
    let mut last = None;
    while !done {
        cluster.restart_exited_agents();
        if let Some(s) = cluster.status(SWEEP) {
            done = s["done"] == true;
            last = Some(s);
        }
        if !done && Instant::now() > deadline {
            report.stuck =
                Some(format!("not done {:?} after the last fault; last status: {last:#?}", cfg.finish_within));
            break;
        }
        if !done {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    log.note("sweep done");

    let status = cluster.status(SWEEP).or(last).unwrap_or_default();
    let trials = status["trials"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = trials.iter().filter_map(|t| t["trial_id"].as_str().map(String::from)).collect();
    // PBT adds a trial for each it replaces.
    let ids_expected = ids.len() == cfg.trials as usize || (cfg.pbt && ids.len() > cfg.trials as usize);
    report.succeeded = trials.iter().filter(|t| t["state"] == "succeeded").count() as u64;
    report.retried_attempts = trials.iter().map(|t| t["attempts"].as_u64().unwrap_or(1).saturating_sub(1)).sum();
    if !ids_expected {
        report.stuck.get_or_insert(format!("status lists {} trials, expected {}", ids.len(), cfg.trials));
    }

    // Parquet trails the store by a flush interval or so; give it a few seconds to catch up.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        match check_results(&cluster.results_dir(), SWEEP, &ids, cfg.epochs, cfg.asha || cfg.pbt) {
            Ok(f) if f.is_clean() || Instant::now() > until => {
                report.findings = f;
                break;
            }
            Err(e) if Instant::now() > until => {
                report.findings.problems.push(format!("reading results: {e}"));
                report.findings.failed_trials = cfg.trials as usize;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    report.agent_self_exits = cluster.agent_self_exits;
    report.seconds = started.elapsed().as_secs_f64();
    report.fault_log = log.render();
    report.log_tails = cluster.log_tails(30);
    report
}

/// Sleeps `d` in small steps, restarting agents that died by themselves; true once the sweep is done.
fn pause_watching(cluster: &mut Cluster, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        cluster.restart_exited_agents();
        std::thread::sleep(Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())));
    }
    cluster.status(SWEEP).is_some_and(|s| s["done"] == true)
}

fn inject(
    fault: Fault,
    cfg: &ChaosConfig,
    cluster: &mut Cluster,
    rng: &mut Rng,
    log: &FaultLog,
    report: &mut RunReport,
) {
    match fault {
        Fault::KillAgent => {
            let i = rng.range(0, cluster.agent_count() as u64) as usize;
            cluster.kill_agent(i);
            std::thread::sleep(Duration::from_millis(rng.range(0, 500)));
            cluster.start_agent(i);
            report.agent_kills += 1;
        }
        Fault::KillCoordinator => {
            cluster.kill_coordinator();
            let down = rng.range(cfg.coordinator_down_ms.0, cfg.coordinator_down_ms.1);
            std::thread::sleep(Duration::from_millis(down));
            cluster.start_coordinator();
            log.note(format!("coordinator was down {down} ms"));
            report.coordinator_kills += 1;
        }
        Fault::CutNetwork => {
            let cut = Duration::from_millis((cfg.cluster.lease_ttl_ms as f64 * cfg.cut_ttls) as u64);
            cluster.proxy.pause();
            log.note(format!("network cut for {} ms", cut.as_millis()));
            std::thread::sleep(cut);
            cluster.proxy.resume();
            log.note(format!("network restored ({} connections refused meanwhile)", cluster.proxy.refused()));
            report.network_cuts += 1;
        }
        Fault::ReplayReports => {
            match replay_burst(&cluster.coordinator_url(), &cluster.checkpoint_root(), cfg.epochs, 2, rng, log) {
                Ok(stats) => {
                    log.note(format!("replay burst: {stats:?}"));
                    report.replay_bursts += 1;
                    report.replayed_reports += stats.reports_replayed;
                    report.replay_rows_duplicate += stats.rows_duplicate;
                    report.stale_reports_refused += stats.stale_refused;
                    report.replay_anomalies.extend(stats.anomalies);
                }
                Err(e) => {
                    log.note(format!("replay burst could not run: {e}"));
                    report.faults_not_injected += 1;
                }
            }
        }
    }
}
