//! The Parquet sink: copies new metric rows and changed trial tables from the store to
//! `results/<sweep>/`. Rows are written in store order and part files are named by their sequence
//! range, so after a crash the files themselves say where to resume: nothing is written twice and
//! nothing is skipped. Parts are append-only but for one change: when a retry re-reports an epoch,
//! the part holding the earlier attempt's rows is written again with them marked `superseded`, so
//! `WHERE NOT superseded` counts every (trial, epoch, metric) once.

use crate::error::Result;
use crate::results::{self, sweep_dir};
use crate::shared::Shared;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Rows per part file at most; a busy sweep rolls to a new file after this many. Reading them
/// holds the store's lock, so the bound also caps how long agents wait on a flush (~0.1 s).
const MAX_ROWS_PER_PART: u32 = 100_000;

/// Where the files stand, per sweep. Owned by the sink task alone.
struct Written {
    root: PathBuf,
    /// The one sweep to write, when not all of them.
    only: Option<String>,
    metric_seq: HashMap<String, i64>,
    trials_version: HashMap<String, i64>,
}

impl Written {
    /// Writes everything the store has that the files do not. Blocking.
    fn catch_up(&mut self, shared: &Shared) -> Result<()> {
        let cursors = shared.blocking_store().cursors()?;
        for c in cursors {
            if self.only.as_ref().is_some_and(|only| *only != c.name) {
                continue;
            }
            let dir = sweep_dir(&self.root, &c.name);
            let written = match self.metric_seq.get(&c.name) {
                Some(seq) => *seq,
                None => self.resume_point(&dir, &c.name, c.last_metric_seq, shared)?,
            };
            let before = written;
            let mut written = written;
            while c.last_metric_seq > written {
                let rows = shared.blocking_store().metrics_after(&c.name, written, MAX_ROWS_PER_PART)?;
                let (Some(first), Some(last)) = (rows.first().map(|r| r.seq), rows.last().map(|r| r.seq)) else {
                    break;
                };
                let rows: Vec<_> = rows.into_iter().map(|r| r.row).collect();
                results::write_metrics_part(&dir, first, last, &rows)?;
                written = last;
            }
            self.metric_seq.insert(c.name.clone(), written);
            if written > before {
                let seqs = shared.blocking_store().newly_superseded(&c.name, before, written)?;
                mark_superseded(shared, &dir, &c.name, &seqs, false)?;
            }
            if self.trials_version.get(&c.name) != Some(&c.trials_version) {
                let rows = shared.blocking_store().trial_rows(&c.name)?;
                results::write_trials_table(&dir, &rows)?;
                self.trials_version.insert(c.name.clone(), c.trials_version);
            }
        }
        Ok(())
    }

    /// The last row already in this sweep's part files. Files written from a different store (its
    /// state folder was deleted, the results kept) would hide new rows, so they are moved aside.
    ///
    /// Rows a retry superseded while the coordinator was down (or before a crash let it mark them)
    /// are marked here: parts whose count of marked rows differs from the store's are written
    /// again, and so are parts from before the `superseded` column, so that every part has it.
    fn resume_point(&self, dir: &std::path::Path, sweep: &str, store_seq: i64, shared: &Shared) -> Result<i64> {
        let on_disk = results::last_written_seq(dir)?.unwrap_or(0);
        if on_disk <= store_seq {
            let seqs = shared.blocking_store().superseded_upto(sweep, on_disk)?;
            mark_superseded(shared, dir, sweep, &seqs, true)?;
            return Ok(on_disk);
        }
        let metrics = dir.join("metrics");
        let aside = dir.join(format!("metrics.from-another-store-{}", crate::store::now_ms()));
        tracing::warn!(sweep, moved_to = %aside.display(), "results were written from another state store; moving them aside");
        std::fs::rename(&metrics, &aside)?;
        Ok(0)
    }
}

/// Writes again, from the store, each part of `sweep` that holds one of the rows numbered `seqs`
/// (sorted): the store marks them superseded. With `check`, a part is written only if the number
/// of rows it marks differs from the store's, or it predates the column.
fn mark_superseded(shared: &Shared, dir: &std::path::Path, sweep: &str, seqs: &[i64], check: bool) -> Result<()> {
    if seqs.is_empty() && !check {
        return Ok(());
    }
    for part in results::metric_parts(dir, check)? {
        let start = seqs.partition_point(|s| *s < part.first_seq);
        let inside = seqs[start..].partition_point(|s| *s <= part.last_seq);
        let stale = if check { part.superseded_rows != Some(inside) } else { inside > 0 };
        if stale {
            let rows = shared.blocking_store().metrics_between(sweep, part.first_seq, part.last_seq)?;
            let rows: Vec<_> = rows.into_iter().map(|r| r.row).collect();
            results::write_metrics_part(dir, part.first_seq, part.last_seq, &rows)?;
            tracing::debug!(sweep, first = part.first_seq, last = part.last_seq, superseded = inside, "part rewritten");
        }
    }
    Ok(())
}

/// Asks the sink to write now; the answer comes when the files are on disk.
#[derive(Clone)]
pub struct SinkHandle {
    tx: mpsc::Sender<oneshot::Sender<Result<()>>>,
}

impl SinkHandle {
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let closed = || crate::Error::Io(std::io::Error::other("the parquet sink has stopped"));
        self.tx.send(reply).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Starts the sink: it writes every `interval`, on request, and once more when all handles are
/// dropped (shutdown). With `only`, it writes that sweep alone.
pub fn spawn(
    shared: Shared,
    root: PathBuf,
    only: Option<String>,
    interval: Duration,
) -> (SinkHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<Result<()>>>(16);
    let task = tokio::spawn(async move {
        let mut written = Some(Written { root, only, metric_seq: HashMap::new(), trials_version: HashMap::new() });
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                _ = tick.tick() => None,
                msg = rx.recv() => match msg {
                    Some(reply) => Some(reply),
                    None => break,
                },
            };
            let mut w = written.take().expect("the sink's record is always returned");
            let shared = shared.clone();
            let (w, outcome) = tokio::task::spawn_blocking(move || {
                let outcome = w.catch_up(&shared);
                (w, outcome)
            })
            .await
            .expect("the sink's writer does not panic");
            written = Some(w);
            match reply {
                Some(reply) => {
                    let _ = reply.send(outcome);
                }
                None => {
                    if let Err(e) = outcome {
                        tracing::error!(error = %e, "writing parquet failed; will retry");
                    }
                }
            }
        }
        let mut w = written.take().expect("present");
        let outcome = tokio::task::spawn_blocking(move || w.catch_up(&shared)).await;
        if let Ok(Err(e)) | Err(e) = outcome.map_err(|e| crate::Error::Io(std::io::Error::other(e))) {
            tracing::error!(error = %e, "final parquet flush failed; the rows stay in the store and are written at the next start");
        }
    });
    (SinkHandle { tx }, task)
}
