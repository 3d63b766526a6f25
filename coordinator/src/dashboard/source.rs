//! Where the dashboard reads: the running coordinator's store, or a results folder read once.
//! Both answer the same questions, so every page works the same in `sweep local`, on a cluster's
//! coordinator and in `sweep ui`.

use super::archive::Archive;
use super::error::ApiError;
use super::hours::Hours;
use super::table::SweepTable;
use crate::results::{DecisionRow, TrialRow};
use crate::shared::Shared;
use crate::store::{AgentRecord, AttemptRecord, Chosen, ComputeHours, SweepSummary};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type TableLock = Arc<tokio::sync::Mutex<SweepTable>>;

/// One trial's curve of one metric: (trial id, metric, (epoch, value) in epoch order).
pub type Curve = (String, String, Vec<(i64, f64)>);

/// Trials read per transaction when a sweep's table is first filled.
const FILL_PAGE: u64 = 10_000;

/// Agents silent for longer than this are left off the agents page, as in `sweep agents`.
const AGENT_WINDOW_MS: i64 = 5 * 60 * 1000;

#[derive(Clone)]
pub enum Source {
    Live { shared: Shared, tables: Arc<Mutex<HashMap<String, TableLock>>>, hours: Arc<Hours> },
    Archive(Arc<Archive>),
}

/// A sweep as the sweeps page lists it.
pub struct SweepCard {
    pub summary: SweepSummary,
    pub hours: Option<ComputeHours>,
    /// Milliseconds since the epoch.
    pub started_at_ms: Option<i64>,
}

/// One trial with what its page shows beyond the table's row.
pub struct TrialDetail {
    pub row: TrialRow,
    pub attempts: Vec<AttemptRecord>,
}

impl Source {
    pub fn live(shared: Shared) -> Source {
        let hours = Hours::warm(&shared);
        Source::Live { shared, tables: Arc::default(), hours }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Source::Live { .. })
    }

    pub async fn sweeps(&self) -> Result<Vec<SweepCard>, ApiError> {
        match self {
            Source::Live { shared, hours, .. } => {
                let summaries = shared
                    .read(|s, _| s.sweep_names()?.iter().map(|name| s.summary(name)).collect::<crate::Result<Vec<_>>>())
                    .await?;
                let mut cards = Vec::with_capacity(summaries.len());
                for summary in summaries {
                    let used = hours.of(shared, &summary.name).await?;
                    cards.push(SweepCard { summary, hours: Some(used), started_at_ms: None });
                }
                Ok(cards)
            }
            Source::Archive(a) => Ok(a.sweeps.iter().map(archived_card).collect()),
        }
    }

    pub async fn summary(&self, sweep: &str) -> Result<SweepSummary, ApiError> {
        match self {
            Source::Live { shared, .. } => {
                let name = sweep.to_string();
                Ok(shared
                    .read(move |s, now| {
                        let mut summary = s.summary(&name)?;
                        summary.waiting = s.stall(&name, now, s.alive_window_ms())?.map(|w| w.to_string());
                        summary.rungs = s.rung_counts(&name)?;
                        Ok(summary)
                    })
                    .await?)
            }
            Source::Archive(a) => Ok(archived_card(archived(a, sweep)?).summary),
        }
    }

    /// The sweep's trials by column, brought up to date first.
    pub async fn table(&self, sweep: &str) -> Result<TableLock, ApiError> {
        match self {
            Source::Archive(a) => Ok(archived(a, sweep)?.table.clone()),
            Source::Live { shared, tables, .. } => {
                let name = sweep.to_string();
                let (version, metric_seq, end) = shared.read(move |s, _| s.sweep_versions(&name)).await?;
                let table =
                    tables.lock().unwrap_or_else(|p| p.into_inner()).entry(sweep.to_string()).or_default().clone();
                let mut held = table.clone().lock_owned().await;
                if held.version < version || held.metric_seq < metric_seq {
                    catch_up(shared, sweep, &mut held, (version, metric_seq), end).await?;
                }
                drop(held);
                Ok(table)
            }
        }
    }

    /// The curves of `trials` for one metric, or every metric (None).
    pub async fn curves(
        &self,
        sweep: &str,
        trials: Vec<String>,
        metric: Option<String>,
    ) -> Result<Vec<Curve>, ApiError> {
        let points = match self {
            Source::Live { shared, .. } => {
                let name = sweep.to_string();
                let rows = shared.read(move |s, _| s.curves(&name, &trials, metric.as_deref())).await?;
                let mut out: Vec<Curve> = Vec::new();
                for p in rows {
                    match out.last_mut() {
                        Some((t, m, points)) if *t == p.trial_id && *m == p.metric => points.push((p.epoch, p.value)),
                        _ => out.push((p.trial_id, p.metric, vec![(p.epoch, p.value)])),
                    }
                }
                out
            }
            Source::Archive(a) => {
                let s = archived(a, sweep)?;
                let mut out = Vec::new();
                for t in trials {
                    let Some(by_metric) = s.curves.get(&t) else { continue };
                    let mut chosen: Vec<(&String, &Vec<(i64, f64)>)> = by_metric
                        .iter()
                        .map(|(m, points)| (&s.metrics[*m as usize], points))
                        .filter(|(name, _)| metric.as_ref().is_none_or(|want| want == *name))
                        .collect();
                    chosen.sort_by(|a, b| a.0.cmp(b.0));
                    for (name, points) in chosen {
                        out.push((t.clone(), name.clone(), points.clone()));
                    }
                }
                out
            }
        };
        Ok(points)
    }

    pub async fn trial(&self, sweep: &str, trial_id: &str) -> Result<TrialDetail, ApiError> {
        match self {
            Source::Live { shared, .. } => {
                let (name, id) = (sweep.to_string(), trial_id.to_string());
                Ok(shared
                    .read(move |s, _| {
                        let row = s
                            .trial_row(&name, &id)?
                            .ok_or_else(|| crate::Error::NotFound(format!("trial {id} in sweep {name}")))?;
                        Ok(TrialDetail { row, attempts: s.attempts(&name, &id)? })
                    })
                    .await?)
            }
            Source::Archive(a) => {
                let s = archived(a, sweep)?;
                let row = s
                    .trials
                    .iter()
                    .find(|t| t.trial_id == trial_id)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(format!("unknown trial {trial_id} in sweep {sweep}")))?;
                Ok(TrialDetail { row, attempts: Vec::new() })
            }
        }
    }

    pub async fn decisions(&self, sweep: &str) -> Result<Vec<DecisionRow>, ApiError> {
        match self {
            Source::Live { shared, .. } => {
                let name = sweep.to_string();
                Ok(shared.read(move |s, _| s.decision_rows(&name)).await?)
            }
            Source::Archive(a) => Ok(archived(a, sweep)?.decisions.clone()),
        }
    }

    pub async fn agents(&self) -> Result<Vec<AgentRecord>, ApiError> {
        match self {
            Source::Live { shared, .. } => Ok(shared.read(|s, now| s.agents(now, AGENT_WINDOW_MS)).await?),
            Source::Archive(_) => Ok(Vec::new()),
        }
    }
}

fn archived<'a>(a: &'a Archive, sweep: &str) -> Result<&'a super::archive::ArchivedSweep, ApiError> {
    a.sweep(sweep).ok_or_else(|| ApiError::not_found(format!("unknown sweep `{sweep}` in {}", a.root.display())))
}

fn archived_card(s: &super::archive::ArchivedSweep) -> SweepCard {
    let mut counts = std::collections::BTreeMap::new();
    for t in &s.trials {
        if let Ok(state) = t.status.parse() {
            *counts.entry(state).or_insert(0) += 1;
        }
    }
    let hours = s.trials.iter().filter_map(|t| t.duration_s).sum::<f64>() / 3600.0;
    SweepCard {
        summary: SweepSummary {
            name: s.name.clone(),
            state: "archived".into(),
            owner: None,
            created_at_ms: s.started_at_us.unwrap_or(0) / 1000,
            counts,
            total: s.trials.len() as u32,
            retries: 0,
            pause_reason: None,
            pause_error: None,
            waiting: None,
            rungs: Vec::new(),
            planned: 0,
            generation: 0,
        },
        // The results files record each trial's duration but not the GPUs it held.
        hours: Some(ComputeHours { trial_hours: hours, gpu_hours: f64::NAN }),
        started_at_ms: s.started_at_us.map(|us| us / 1000),
    }
}

/// Brings `table` up to `version` and `metric_seq`: the whole sweep a page of trials at a time the
/// first time, then only the trials and finals that changed.
async fn catch_up(
    shared: &Shared,
    sweep: &str,
    table: &mut SweepTable,
    (version, metric_seq): (i64, i64),
    end: u64,
) -> Result<(), ApiError> {
    if table.version == 0 && table.metric_seq == 0 && table.is_empty() {
        for from in (0..end).step_by(FILL_PAGE as usize) {
            let name = sweep.to_string();
            let chosen = Chosen::Positions { from, to: from + FILL_PAGE };
            let page = shared.read(move |s, _| s.trial_rows(&name, chosen)).await?;
            table.upsert(&page);
        }
    } else {
        let (name, after, seq) = (sweep.to_string(), table.version, table.metric_seq);
        let (changed, finals) = shared
            .read(move |s, _| {
                Ok((s.trial_rows(&name, Chosen::ChangedAfter(after))?, s.finals_changed_after(&name, seq)?))
            })
            .await?;
        table.upsert(&changed);
        for (trial, metric, value) in finals.0 {
            table.set_final_of(&trial, &metric, value);
        }
    }
    // Read after the versions were: anything that changed meanwhile is read again next time.
    table.version = version;
    table.metric_seq = metric_seq;
    Ok(())
}
