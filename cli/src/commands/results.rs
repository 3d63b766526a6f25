//! `sweep results SWEEP`: from the Parquet files or from the coordinator; both give the same rows.
//! Where to look, in order: `--results DIR` (or `SWEEP_RESULTS`) reads `DIR/SWEEP/`; a coordinator
//! given with `--coordinator` (or `SWEEP_COORDINATOR`) is asked; `./results/SWEEP/`, where
//! `sweep local` writes, is read when it exists; else the coordinator at the default address.

use crate::client;
use crate::table::{self, Format};
use std::path::Path;
use sweep_proto::v1 as pb;
use sweep_results::{self as results, TrialRow};

/// The sweep's trials as they stand: `trials.parquet` with the changes written since
/// (`trial-changes/`).
pub fn from_files(dir: &Path, sweep: &str) -> anyhow::Result<Vec<TrialRow>> {
    let sweep_dir = results::checked_sweep_dir(dir, sweep)?;
    let path = sweep_dir.join(results::TRIALS_FILE);
    if !path.exists() {
        anyhow::bail!(
            "{}: no results for sweep `{sweep}` here (is --results the folder that holds <sweep>/trials.parquet?)",
            path.display()
        );
    }
    Ok(results::read_current_trials(&sweep_dir)?)
}

/// Every trial's row, asked for page by page.
pub async fn from_coordinator(remote: &client::Remote, sweep: &str) -> anyhow::Result<Vec<TrialRow>> {
    let mut c = client::connect(remote).await?;
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let page = c
            .get_results(pb::GetResultsRequest { sweep_id: sweep.to_string(), offset, ..Default::default() })
            .await
            .map_err(client::explain)?
            .into_inner();
        for t in page.trials {
            rows.push(row_from_wire(sweep, t)?);
        }
        if page.next_offset <= offset {
            return Ok(rows);
        }
        offset = page.next_offset;
    }
}

fn row_from_wire(sweep: &str, t: pb::TrialResult) -> anyhow::Result<TrialRow> {
    let params = match serde_json::from_str(&t.params_json)? {
        serde_json::Value::Object(m) => m,
        _ => anyhow::bail!("trial {}: parameters are not an object", t.trial_id),
    };
    Ok(TrialRow {
        sweep: sweep.to_string(),
        trial_id: t.trial_id,
        workload: t.workload,
        status: t.status,
        attempts: t.attempts as i32,
        agent: (!t.agent.is_empty()).then_some(t.agent),
        started_at_us: (t.started_at_ms > 0).then_some(t.started_at_ms * 1000),
        finished_at_us: (t.finished_at_ms > 0).then_some(t.finished_at_ms * 1000),
        duration_s: (t.started_at_ms > 0 && t.finished_at_ms >= t.started_at_ms)
            .then(|| (t.finished_at_ms - t.started_at_ms) as f64 / 1000.0),
        params,
        finals: t.finals.into_iter().collect(),
        last_error: (!t.last_error.is_empty()).then_some(t.last_error),
        exit_code: t.exit_code,
        version: t.version,
        rung: t.rung,
        epochs_budget: t.epochs_budget,
        parent_trial_id: (!t.parent_trial_id.is_empty()).then_some(t.parent_trial_id),
        copied_epoch: t.copied_epoch,
        generation: t.generation as i32,
    })
}

/// The folder `sweep local` writes results to by default.
pub const LOCAL_RESULTS: &str = "results";

/// Where `sweep results` reads a sweep's rows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Files(std::path::PathBuf),
    Coordinator,
    /// Nothing says where: the default coordinator, with an error naming both options if it does
    /// not answer.
    DefaultCoordinator,
}

/// The lookup rule: an explicit folder, an explicit coordinator, then `./results/<sweep>/`.
pub fn source(dir: Option<&Path>, coordinator_given: bool, sweep: &str) -> Source {
    if let Some(dir) = dir {
        return Source::Files(dir.to_path_buf());
    }
    if coordinator_given {
        return Source::Coordinator;
    }
    let local = Path::new(LOCAL_RESULTS);
    match results::checked_sweep_dir(local, sweep) {
        Ok(d) if d.join(results::TRIALS_FILE).exists() => Source::Files(local.to_path_buf()),
        _ => Source::DefaultCoordinator,
    }
}

pub async fn run(
    remote: &client::Remote,
    coordinator_given: bool,
    sweep: &str,
    format: Format,
    dir: Option<&Path>,
) -> anyhow::Result<()> {
    let rows = match source(dir, coordinator_given, sweep) {
        Source::Files(dir) => from_files(&dir, sweep)?,
        Source::Coordinator => from_coordinator(remote, sweep).await?,
        Source::DefaultCoordinator => {
            if let Err(e) = client::connect(remote).await {
                anyhow::bail!(
                    "no results for sweep `{sweep}`: ./{LOCAL_RESULTS}/{sweep}/{} does not exist, and {e:#}\n  \
                     pass --results DIR (the folder `sweep local --results` wrote) or --coordinator URL",
                    results::TRIALS_FILE
                );
            }
            from_coordinator(remote, sweep).await?
        }
    };
    print!("{}", table::render(&rows, format));
    Ok(())
}
