//! The Parquet sink: copies new metric rows and changed trials from the store to
//! `results/<sweep>/`. Rows are written in store order and part files are named by their sequence
//! range, so after a crash the files themselves say where to resume: nothing is written twice and
//! nothing is skipped. Parts are append-only but for one change: when a retry re-reports an epoch,
//! the part holding the earlier attempt's rows is written again with them marked `superseded`, so
//! `WHERE NOT superseded` counts every (trial, epoch, metric) once.
//!
//! Trials cost in proportion to what changed, not to the sweep: the trials that changed since the
//! last write go to a `trial-changes/` part, and `trials.parquet` is rewritten whole only when the
//! sweep has nothing left to run, on a flush, or once ten times as long as its last rewrite took
//! has passed, so that rewriting a million-trial table takes at most a tenth of the sink's time.
//! The sink reads through a read-only connection of its own and never holds the store's lock.

use crate::error::Result;
use crate::results::{self, sweep_dir};
use crate::shared::Shared;
use crate::store::{Chosen, Store, SweepCursor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Rows per part file at most; a busy sweep rolls to a new file after this many. It also bounds
/// the rows the sink holds in memory at once (~0.1 s to read).
const MAX_ROWS_PER_PART: u32 = 100_000;

/// Trials per row group of `trials.parquet`: the most the sink holds in memory while it writes one.
const TABLE_PAGE: u64 = 50_000;

/// `trials.parquet` is rewritten once this many times as long as its last rewrite took has passed
/// (`sweep-coordinator --trials-rewrite-spacing`).
pub const DEFAULT_REWRITE_SPACING: u32 = 10;

/// Where the files stand, per sweep. Owned by the sink task alone.
struct Written {
    root: PathBuf,
    /// The one sweep to write, when not all of them.
    only: Option<String>,
    rewrite_spacing: u32,
    /// The sink's own read-only connection.
    store: Store,
    metric_seq: HashMap<String, i64>,
    trials: HashMap<String, TrialsWritten>,
    /// The last decision `decisions.parquet` holds, per sweep, since this process started, and
    /// its last rewrite.
    decisions: HashMap<String, (i64, Rewrite)>,
}

/// When a file rewritten whole was last written, and how long that took.
struct Rewrite {
    at: Instant,
    took: Duration,
}

impl Rewrite {
    /// Timed from now, for a write that began at `started`.
    fn done(started: Instant) -> Rewrite {
        Rewrite { at: Instant::now(), took: started.elapsed() }
    }

    /// Whether `spacing` times as long as the last rewrite took has passed since it was made. A
    /// wait too long to count is never reached: such a file is rewritten only when its sweep is
    /// done, or on a flush.
    fn due(&self, spacing: u32) -> bool {
        self.took.checked_mul(spacing).is_some_and(|wait| self.at.elapsed() >= wait)
    }
}

/// Where one sweep's trial files stand.
struct TrialsWritten {
    /// The version `trials.parquet` holds every change up to; -1 without a table.
    table: i64,
    /// The highest version written anywhere, table or change parts.
    changes: i64,
    rewrite: Rewrite,
}

impl Written {
    /// Writes everything the store has that the files do not. With `complete`, `trials.parquet`
    /// is brought up to date as well. Blocking.
    fn catch_up(&mut self, complete: bool) -> Result<()> {
        let cursors = self.store.cursors()?;
        for c in cursors {
            if self.only.as_ref().is_some_and(|only| *only != c.name) {
                continue;
            }
            let dir = sweep_dir(&self.root, &c.name);
            let written = match self.metric_seq.get(&c.name) {
                Some(seq) => *seq,
                None => self.resume_point(&dir, &c.name, c.last_metric_seq)?,
            };
            let before = written;
            let mut written = written;
            while c.last_metric_seq > written {
                let rows = self.store.metrics_after(&c.name, written, MAX_ROWS_PER_PART)?;
                let (Some(first), Some(last)) = (rows.first().map(|r| r.seq), rows.last().map(|r| r.seq)) else {
                    break;
                };
                let rows: Vec<_> = rows.into_iter().map(|r| r.row).collect();
                results::write_metrics_part(&dir, first, last, &rows)?;
                written = last;
            }
            self.metric_seq.insert(c.name.clone(), written);
            if written > before {
                let seqs = self.store.newly_superseded(&c.name, before, written)?;
                mark_superseded(&self.store, &dir, &c.name, &seqs, false)?;
            }
            self.write_trials(&dir, &c, complete)?;
            self.write_decisions(&dir, &c, complete)?;
        }
        Ok(())
    }

    /// Rewrites `decisions.parquet` when the schedule decided more, as often as `trials.parquet`
    /// is rewritten: at once when the sweep is done or on a flush.
    fn write_decisions(&mut self, dir: &Path, c: &SweepCursor, complete: bool) -> Result<()> {
        let w = self.decisions.get(&c.name);
        if c.last_decision_seq == 0 || w.is_some_and(|(upto, _)| *upto >= c.last_decision_seq) {
            return Ok(());
        }
        let due = complete || !c.open || w.is_none_or(|(_, rewrite)| rewrite.due(self.rewrite_spacing));
        if !due {
            return Ok(());
        }
        let started = Instant::now();
        let rows = self.store.decision_rows(&c.name)?;
        results::write_decisions_table(dir, &rows)?;
        let upto = rows.last().map_or(0, |r| r.seq);
        self.decisions.insert(c.name.clone(), (upto, Rewrite::done(started)));
        Ok(())
    }

    /// Writes the sweep's changed trials: the whole table when it is due, else a change part.
    fn write_trials(&mut self, dir: &Path, c: &SweepCursor, complete: bool) -> Result<()> {
        if !self.trials.contains_key(&c.name) {
            let w = trials_resume_point(dir, &c.name, c.trials_version)?;
            self.trials.insert(c.name.clone(), w);
        }
        let w = self.trials.get_mut(&c.name).expect("inserted above");
        if c.trials_version == w.table {
            return Ok(());
        }
        let due = complete || !c.open || w.rewrite.due(self.rewrite_spacing);
        if due {
            let started = Instant::now();
            let (trials, version) = self.store.in_snapshot(|store| write_trials_table(store, dir, &c.name))?;
            results::remove_trial_changes_upto(dir, Some(version))?;
            w.table = version;
            w.changes = w.changes.max(version);
            w.rewrite = Rewrite::done(started);
            tracing::debug!(sweep = %c.name, trials, version, took = ?w.rewrite.took, "trials table written");
        } else if c.trials_version > w.changes {
            let rows = self.store.trial_rows(&c.name, Chosen::ChangedAfter(w.changes))?;
            if let Some(last) = rows.iter().map(|r| r.version).max() {
                results::write_trial_changes(dir, w.changes + 1, last, &rows)?;
                w.changes = last;
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
    fn resume_point(&self, dir: &Path, sweep: &str, store_seq: i64) -> Result<i64> {
        let on_disk = results::last_written_seq(dir)?.unwrap_or(0);
        if on_disk <= store_seq {
            let seqs = self.store.superseded_upto(sweep, on_disk)?;
            mark_superseded(&self.store, dir, sweep, &seqs, true)?;
            return Ok(on_disk);
        }
        let metrics = dir.join("metrics");
        let aside = dir.join(format!("metrics.from-another-store-{}", crate::store::now_ms()));
        tracing::warn!(sweep, moved_to = %aside.display(), "results were written from another state store; moving them aside");
        std::fs::rename(&metrics, &aside)?;
        Ok(0)
    }
}

/// Writes the sweep's whole `trials.parquet` from `store`, a page at a time; returns how many trials
/// it holds and the version it is up to date with. Call it in a snapshot, so the pages and the
/// columns are of one moment.
fn write_trials_table(store: &Store, dir: &Path, sweep: &str) -> Result<(u64, i64)> {
    let mut table = results::TrialsTableWriter::create(dir, &store.trials_table_shape(sweep)?)?;
    let (mut offset, mut version) = (0u64, 0i64);
    loop {
        let page = store.trial_rows(sweep, Chosen::Page { offset, limit: TABLE_PAGE })?;
        version = page.iter().map(|r| r.version).fold(version, i64::max);
        table.write(&page)?;
        offset += page.len() as u64;
        if (page.len() as u64) < TABLE_PAGE {
            break;
        }
    }
    table.finish()?;
    Ok((offset, version))
}

/// Where a sweep's trial files stood when this process started. Change parts that the table
/// already holds (a crash came between the two writes) are removed; files ahead of the store (it
/// was replaced, the results kept) are all written again.
fn trials_resume_point(dir: &Path, sweep: &str, store_version: i64) -> Result<TrialsWritten> {
    let table = results::trials_table_version(dir)?;
    let changes = results::last_trial_change(dir)?;
    let mut w = TrialsWritten {
        table: table.unwrap_or(-1),
        changes: table.max(changes).unwrap_or(0),
        rewrite: Rewrite { at: Instant::now(), took: Duration::ZERO },
    };
    if w.table > store_version || w.changes > store_version {
        tracing::warn!(sweep, "trial files were written from another state store; writing them again");
        results::remove_trial_changes_upto(dir, None)?;
        w.table = -1;
        w.changes = 0;
    } else if let Some(table) = table {
        results::remove_trial_changes_upto(dir, Some(table))?;
    }
    Ok(w)
}

/// Writes again, from the store, each part of `sweep` that holds one of the rows numbered `seqs`
/// (sorted): the store marks them superseded. With `check`, a part is written only if the number
/// of rows it marks differs from the store's, or it predates the column.
fn mark_superseded(store: &Store, dir: &Path, sweep: &str, seqs: &[i64], check: bool) -> Result<()> {
    if seqs.is_empty() && !check {
        return Ok(());
    }
    for part in results::metric_parts(dir, check)? {
        let start = seqs.partition_point(|s| *s < part.first_seq);
        let inside = seqs[start..].partition_point(|s| *s <= part.last_seq);
        let stale = if check { part.superseded_rows != Some(inside) } else { inside > 0 };
        if stale {
            let rows = store.metrics_between(sweep, part.first_seq, part.last_seq)?;
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
    rewrite_spacing: u32,
) -> (SinkHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<Result<()>>>(16);
    let task = tokio::spawn(async move {
        let store = match shared.open_reader() {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(error = %e, "the parquet sink cannot read the store; no results are written");
                return;
            }
        };
        let mut written = Some(Written {
            root,
            only,
            rewrite_spacing,
            store,
            metric_seq: HashMap::new(),
            trials: HashMap::new(),
            decisions: HashMap::new(),
        });
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
            let complete = reply.is_some();
            let (w, outcome) = tokio::task::spawn_blocking(move || {
                let outcome = w.catch_up(complete);
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
        let outcome = tokio::task::spawn_blocking(move || w.catch_up(true)).await;
        if let Ok(Err(e)) | Err(e) = outcome.map_err(|e| crate::Error::Io(std::io::Error::other(e))) {
            tracing::error!(error = %e, "final parquet flush failed; the rows stay in the store and are written at the next start");
        }
    });
    (SinkHandle { tx }, task)
}
