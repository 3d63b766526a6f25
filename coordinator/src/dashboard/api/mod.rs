//! The JSON the pages are drawn from. Every answer is computed on the server and cut to what one
//! screen shows (a page of trials, the top curves, a sample of lines), so a page of a
//! 100,000-trial sweep moves kilobytes, not the sweep. Here: what every view shares (names and
//! their bounds, the metric a chart shows), the sweeps, a sweep's summary and decisions, the
//! agents and the live feed; the table, the charts, the actions and the figures have files of
//! their own.

mod actions;
mod charts;
mod figures;
mod trials;

pub use actions::{cancel, retry};
pub use charts::{curves, importance, parallel};
pub use figures::{plot, plots};
pub use trials::{trial, trials};

use super::error::ApiError;
use super::table::{number, SweepTable};
use super::Dashboard;
use crate::auth::Caller;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::{json, Map, Value};

/// Most trials whose curves one chart draws.
pub const MAX_TOP: usize = 50;
/// Most trials drawn as lines of the parallel-coordinates chart; the best ones when there are more.
pub const MAX_PARALLEL: usize = 2000;
/// Most metrics whose final values a page of the table carries.
const MAX_METRIC_COLUMNS: usize = 16;
/// Longest trial id or metric name taken from a URL.
const MAX_NAME: usize = 256;
/// Decisions one page lists, newest first.
const MAX_DECISIONS: usize = 500;

pub fn check_sweep(sweep: &str) -> Result<(), ApiError> {
    if sweep_spec::file::is_safe_name(sweep) {
        Ok(())
    } else {
        Err(ApiError::bad_request("not a sweep name: letters, digits, `-`, `_` and `.`, up to 128 characters"))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad_request(format!("a {what} is 1 to {MAX_NAME} bytes")));
    }
    Ok(())
}

/// Whether lower is better for a metric, from its name: losses, errors, perplexities and costs.
pub fn lower_is_better(metric: &str) -> bool {
    ["loss", "error", "perplexity", "seconds", "_ms", "bytes", "regret"].iter().any(|w| metric.contains(w))
}

/// The metric a page opens on: the first of the usual headline metrics the sweep reports.
fn default_metric(t: &SweepTable) -> Option<String> {
    const HEADLINE: [&str; 10] = [
        "test_acc",
        "val_acc",
        "accuracy",
        "p_at_1",
        "val_token_acc",
        "test_error",
        "val_error",
        "test_loss",
        "val_loss",
        "loss",
    ];
    HEADLINE
        .iter()
        .find(|m| t.metric(m).is_some())
        .map(|m| m.to_string())
        .or_else(|| t.metrics.iter().map(|c| c.name.clone()).min())
}

/// The metric a chart is asked for, or the page's default; None when the sweep reports none yet.
fn chosen_metric(asked: Option<&str>, t: &SweepTable) -> Result<Option<String>, ApiError> {
    let metric = asked.filter(|m| !m.is_empty()).map(str::to_string).or_else(|| default_metric(t));
    if let Some(m) = &metric {
        check_name("metric", m)?;
    }
    Ok(metric)
}

fn goal_of(metric: &str, goal: Option<&str>) -> Result<bool, ApiError> {
    match goal {
        None | Some("") => Ok(!lower_is_better(metric)),
        Some("max") => Ok(true),
        Some("min") => Ok(false),
        Some(_) => Err(ApiError::bad_request("goal is `max` or `min`")),
    }
}

pub async fn session(State(d): State<Dashboard>, caller: Option<Extension<Caller>>) -> Json<Value> {
    let caller = crate::dashboard::auth::caller(caller);
    Json(json!({ "user": caller.name(), "live": d.source.is_live(), "auth": d.tokens.enabled() }))
}

pub async fn sweeps(State(d): State<Dashboard>) -> Result<Json<Value>, ApiError> {
    let cards = d.source.sweeps().await?;
    let list: Vec<Value> = cards
        .into_iter()
        .map(|c| {
            let s = &c.summary;
            let counts: Map<String, Value> = s.counts.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect();
            let finished: u32 = s.counts.iter().filter(|(k, _)| k.is_terminal()).map(|(_, v)| *v).sum();
            json!({
                "name": s.name, "state": s.shown_state(), "owner": s.owner, "total": s.total, "finished": finished,
                "counts": counts, "created_at_ms": s.created_at_ms, "started_at_ms": c.started_at_ms,
                "gpu_hours": c.hours.map(|h| number(h.gpu_hours)), "trial_hours": c.hours.map(|h| number(h.trial_hours)),
            })
        })
        .collect();
    Ok(Json(json!({ "sweeps": list })))
}

pub async fn sweep(State(d): State<Dashboard>, Path(sweep): Path<String>) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let summary = d.source.summary(&sweep).await?;
    let table = d.source.table(&sweep).await?;
    let t = table.lock().await;
    let counts: Map<String, Value> = summary.counts.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect();
    let varying: Vec<&str> = t.varying_params().iter().map(|c| c.name.as_str()).collect();
    let params: Vec<&str> = t.params.iter().map(|c| c.name.as_str()).collect();
    let mut metrics: Vec<&str> = t.metrics.iter().map(|c| c.name.as_str()).collect();
    metrics.sort();
    let rungs: Vec<Value> =
        summary.rungs.iter().map(|r| json!({ "epoch": r.epoch, "judged": r.judged, "went_on": r.went_on, "stopped": r.stopped, "paused": r.paused })).collect();
    Ok(Json(json!({
        "name": summary.name, "state": summary.shown_state(), "owner": summary.owner, "total": summary.total,
        "counts": counts, "created_at_ms": summary.created_at_ms, "waiting": summary.waiting,
        "pause_reason": summary.pause_reason, "pause_error": summary.pause_error,
        "params": params, "varying": varying, "metrics": metrics, "default_metric": default_metric(&t),
        "rungs": rungs, "live": d.source.is_live(), "plots": d.plots.is_some(),
    })))
}

pub async fn decisions(State(d): State<Dashboard>, Path(sweep): Path<String>) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let rows = d.source.decisions(&sweep).await?;
    let total = rows.len();
    let list: Vec<Value> = rows
        .iter()
        .rev()
        .take(MAX_DECISIONS)
        .map(|r| {
            json!({
                "trial_id": r.trial_id, "epoch": r.epoch, "rung": r.rung, "action": r.action, "metric": r.metric,
                "value": r.value.map(number), "threshold": r.threshold.map(number), "reached": r.reached,
                "kept": r.kept, "decided_at_us": r.decided_at_us,
            })
        })
        .collect();
    Ok(Json(json!({ "total": total, "decisions": list })))
}

pub async fn agents(State(d): State<Dashboard>) -> Result<Json<Value>, ApiError> {
    let agents = d.source.agents().await?;
    let list: Vec<Value> = agents
        .into_iter()
        .map(|a| {
            json!({
                "id": a.id, "hostname": a.hostname, "slots": a.slots, "gpus": a.gpus, "running": a.running,
                "last_seen_ms": a.last_seen_ms, "consecutive_failures": a.consecutive_failures,
                "quarantined": a.quarantined, "quarantine_reason": a.quarantine_reason,
                "gpu_room": a.gpu_room.iter().map(|r| json!({ "share": number(r.share), "free_bytes": r.free_bytes })).collect::<Vec<_>>(),
                "gpu_room_at_ms": a.gpu_room_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "agents": list, "live": d.source.is_live() })))
}

pub async fn events(State(d): State<Dashboard>) -> Response {
    match d.feed.as_ref().map(|f| f.stream()) {
        Some(Some(stream)) => stream.into_response(),
        Some(None) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too many live pages are open").into_response(),
        // Results files do not change while they are shown: nothing to stream (204 tells the page
        // not to reconnect).
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
