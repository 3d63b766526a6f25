//! The JSON the pages are drawn from. Every answer is computed on the server and cut to what one
//! screen shows (a page of trials, the top curves, a sample of lines), so a page of a
//! 100,000-trial sweep moves kilobytes, not the sweep.

use super::error::ApiError;
use super::query::{self, Ask, Key};
use super::table::{number, Cell, SweepTable};
use super::Dashboard;
use crate::auth::Caller;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{header, HeaderMap, StatusCode};
use serde::Deserialize;
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
    let caller = super::auth::caller(caller);
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

#[derive(Deserialize, Default)]
pub struct TableAsk {
    offset: Option<usize>,
    limit: Option<usize>,
    sort: Option<String>,
    desc: Option<bool>,
    /// Comma-separated states.
    states: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// A trial id or the start of one.
    find: Option<String>,
    /// The metric the page is looking at: always among the columns.
    metric: Option<String>,
}

pub async fn trials(
    State(d): State<Dashboard>,
    Path(sweep): Path<String>,
    Query(ask): Query<TableAsk>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let table = d.source.table(&sweep).await?;
    let t = table.lock().await;
    let states: Vec<String> = ask
        .states
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if states.len() > crate::lifecycle::TrialState::ALL.len()
        || states.iter().any(|s| s.parse::<crate::lifecycle::TrialState>().is_err())
    {
        return Err(ApiError::bad_request(format!(
            "states are some of {}",
            crate::lifecycle::TrialState::ALL.map(|s| s.as_str()).join(", ")
        )));
    }
    if let Some(find) = &ask.find {
        check_name("trial id", find)?;
    }
    let asked = Ask {
        states,
        conditions: query::parse_where(ask.filter.as_deref().unwrap_or(""), &t).map_err(ApiError::bad_request)?,
        id_prefix: ask.find.clone().filter(|f| !f.is_empty()),
        sort: ask
            .sort
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Key::parse(s, &t))
            .transpose()
            .map_err(ApiError::bad_request)?,
        descending: ask.desc.unwrap_or(false),
    };
    let rows = query::matching(&t, &asked);
    let limit = ask.limit.unwrap_or(50).clamp(1, query::MAX_PAGE);
    let offset = ask.offset.unwrap_or(0).min(rows.len());
    let mut metric_cols: Vec<&str> = Vec::new();
    if let Some(m) = ask.metric.as_deref().filter(|m| t.metric(m).is_some()) {
        metric_cols.push(m);
    }
    let mut names: Vec<&str> = t.metrics.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    for m in names {
        if metric_cols.len() >= MAX_METRIC_COLUMNS {
            break;
        }
        if !metric_cols.contains(&m) {
            metric_cols.push(m);
        }
    }
    let params: Vec<&str> = t.varying_params().iter().map(|c| c.name.as_str()).collect();
    let page: Vec<Value> = rows[offset..(offset + limit).min(rows.len())]
        .iter()
        .map(|&at| {
            let h = &t.heads[at];
            let p: Map<String, Value> = params
                .iter()
                .map(|n| (n.to_string(), t.param(n).map_or(Value::Null, |c| c.values[at].to_json())))
                .collect();
            let m: Map<String, Value> = metric_cols
                .iter()
                .map(|n| (n.to_string(), t.metric(n).map_or(Value::Null, |c| number(c.values[at]))))
                .collect();
            json!({
                "index": at, "trial_id": &*h.trial_id, "state": &*h.state, "attempts": h.attempts,
                "agent": h.agent.as_deref(), "duration_s": h.duration_s.map(number), "rung": h.rung,
                "params": p, "metrics": m,
            })
        })
        .collect();
    Ok(Json(json!({
        "total": t.len(), "matched": rows.len(), "offset": offset, "limit": limit,
        "params": params, "metrics": metric_cols, "rows": page,
    })))
}

#[derive(Deserialize)]
pub struct CurvesAsk {
    metric: Option<String>,
    top: Option<usize>,
    goal: Option<String>,
    /// A trial drawn besides the top ones, highlighted.
    highlight: Option<String>,
}

/// The positions of the `n` best trials by the final value of `metric`, best first.
fn best(t: &SweepTable, metric: &str, higher: bool, n: usize) -> Vec<usize> {
    let Some(col) = t.metric(metric) else { return Vec::new() };
    let mut ranked: Vec<usize> = (0..t.len()).filter(|&i| col.values[i].is_finite()).collect();
    let key = |i: &usize| if higher { -col.values[*i] } else { col.values[*i] };
    if ranked.len() > n {
        ranked.select_nth_unstable_by(n, |a, b| key(a).total_cmp(&key(b)));
        ranked.truncate(n);
    }
    ranked.sort_by(|a, b| key(a).total_cmp(&key(b)));
    ranked
}

/// A short label of a trial's varying parameters, for legends.
fn label(t: &SweepTable, at: usize) -> String {
    let parts: Vec<String> = t
        .varying_params()
        .iter()
        .take(4)
        .map(|c| match &c.values[at] {
            Cell::Num(x) => format!("{}={}", c.name, short(*x)),
            Cell::Text(s) => format!("{}={}", c.name, s),
            Cell::Missing => format!("{}=–", c.name),
        })
        .collect();
    parts.join(" ")
}

fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.2e}")
    } else {
        format!("{}", (x * 1e4).round() / 1e4)
    }
}

pub async fn curves(
    State(d): State<Dashboard>,
    Path(sweep): Path<String>,
    Query(ask): Query<CurvesAsk>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let table = d.source.table(&sweep).await?;
    let (metric, higher, chosen) = {
        let t = table.lock().await;
        let Some(metric) = chosen_metric(ask.metric.as_deref(), &t)? else {
            return Ok(Json(json!({ "metric": null, "trials": [] })));
        };
        let higher = goal_of(&metric, ask.goal.as_deref())?;
        let mut chosen: Vec<(usize, bool)> =
            best(&t, &metric, higher, ask.top.unwrap_or(10).min(MAX_TOP)).into_iter().map(|i| (i, false)).collect();
        if let Some(h) = ask.highlight.as_deref().filter(|h| !h.is_empty()) {
            check_name("trial id", h)?;
            let at = t.slot_of(h).ok_or_else(|| ApiError::not_found(format!("unknown trial {h} in sweep {sweep}")))?;
            chosen.retain(|(i, _)| *i != at);
            chosen.push((at, true));
        }
        let chosen: Vec<(String, bool, String, String, Value)> = chosen
            .into_iter()
            .map(|(at, hl)| {
                let fin = t.metric(&metric).map_or(Value::Null, |c| number(c.values[at]));
                (t.heads[at].trial_id.to_string(), hl, t.heads[at].state.to_string(), label(&t, at), fin)
            })
            .collect();
        (metric, higher, chosen)
    };
    let ids: Vec<String> = chosen.iter().map(|c| c.0.clone()).collect();
    let curves = d.source.curves(&sweep, ids, Some(metric.clone())).await?;
    let trials: Vec<Value> = chosen
        .into_iter()
        .map(|(id, highlighted, state, label, fin)| {
            let points: Vec<Value> = curves
                .iter()
                .filter(|c| c.0 == id)
                .flat_map(|c| c.2.iter().map(|(e, v)| json!([e, number(*v)])))
                .collect();
            json!({ "trial_id": id, "highlighted": highlighted, "state": state, "label": label, "final": fin, "points": points })
        })
        .collect();
    Ok(Json(json!({ "metric": metric, "goal": if higher { "max" } else { "min" }, "trials": trials })))
}

#[derive(Deserialize)]
pub struct MetricAsk {
    metric: Option<String>,
    goal: Option<String>,
}

pub async fn parallel(
    State(d): State<Dashboard>,
    Path(sweep): Path<String>,
    Query(ask): Query<MetricAsk>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let table = d.source.table(&sweep).await?;
    let t = table.lock().await;
    let Some(metric) = chosen_metric(ask.metric.as_deref(), &t)? else {
        return Ok(Json(json!({ "metric": null, "dimensions": [], "trials": 0 })));
    };
    let higher = goal_of(&metric, ask.goal.as_deref())?;
    let rows = best(&t, &metric, higher, MAX_PARALLEL);
    let mut dimensions: Vec<Value> = Vec::new();
    for col in t.varying_params() {
        let cells: Vec<&Cell> = rows.iter().map(|&i| &col.values[i]).collect();
        if cells.iter().all(|c| matches!(c, Cell::Num(_) | Cell::Missing)) {
            let nums: Vec<f64> = cells.iter().map(|c| if let Cell::Num(x) = c { *x } else { f64::NAN }).collect();
            let finite: Vec<f64> = nums.iter().copied().filter(|x| x.is_finite()).collect();
            let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            // A positive parameter spanning decades (a learning rate) reads best on a log scale.
            let log = lo > 0.0 && hi / lo >= 100.0;
            let values: Vec<Value> = nums.iter().map(|&x| number(if log { x.log10() } else { x })).collect();
            let name = if log { format!("log10({})", col.name) } else { col.name.clone() };
            dimensions.push(json!({ "label": name, "values": values }));
        } else {
            let mut labels: Vec<String> = cells
                .iter()
                .map(|c| match c {
                    Cell::Text(s) => s.to_string(),
                    Cell::Num(x) => short(*x),
                    Cell::Missing => "–".into(),
                })
                .collect();
            let mut distinct = labels.clone();
            distinct.sort();
            distinct.dedup();
            let codes: Vec<Value> = labels.drain(..).map(|l| json!(distinct.binary_search(&l).unwrap_or(0))).collect();
            dimensions.push(json!({
                "label": col.name, "values": codes,
                "tickvals": (0..distinct.len()).collect::<Vec<_>>(), "ticktext": distinct,
            }));
        }
    }
    let values: Vec<Value> =
        rows.iter().map(|&i| t.metric(&metric).map_or(Value::Null, |c| number(c.values[i]))).collect();
    dimensions.push(json!({ "label": metric, "values": values }));
    Ok(Json(
        json!({ "metric": metric, "goal": if higher { "max" } else { "min" }, "trials": rows.len(), "of": t.len(), "dimensions": dimensions }),
    ))
}

pub async fn importance(
    State(d): State<Dashboard>,
    Path(sweep): Path<String>,
    Query(ask): Query<MetricAsk>,
) -> Result<Json<Value>, ApiError> {
    use super::importance::Feature;
    check_sweep(&sweep)?;
    let table = d.source.table(&sweep).await?;
    let (metric, names, features, target) = {
        let t = table.lock().await;
        let Some(metric) = chosen_metric(ask.metric.as_deref(), &t)? else {
            return Ok(Json(json!({ "metric": null, "params": [] })));
        };
        let Some(target) = t.metric(&metric).map(|c| c.values.clone()) else {
            return Err(ApiError::not_found(format!("this sweep has no metric named `{metric}`")));
        };
        let mut names = Vec::new();
        let mut features = Vec::new();
        for col in t.varying_params() {
            names.push(col.name.clone());
            if col.values.iter().all(|c| matches!(c, Cell::Num(_) | Cell::Missing)) {
                features.push(Feature::Numeric(
                    col.values.iter().map(|c| if let Cell::Num(x) = c { *x } else { f64::NAN }).collect(),
                ));
            } else {
                let mut codes: std::collections::HashMap<String, u32> = Default::default();
                let values = col
                    .values
                    .iter()
                    .map(|c| match c {
                        Cell::Missing => u32::MAX,
                        other => {
                            let key = other.to_json().to_string();
                            let next = codes.len() as u32;
                            *codes.entry(key).or_insert(next)
                        }
                    })
                    .collect();
                features.push(Feature::Categorical(values));
            }
        }
        (metric, names, features, target)
    };
    let shares = tokio::task::spawn_blocking(move || super::importance::importance(&features, &target, 0))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut ranked: Vec<(String, f64)> = names.into_iter().zip(shares).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let params: Vec<Value> = ranked.into_iter().map(|(n, s)| json!({ "param": n, "importance": number(s) })).collect();
    Ok(Json(json!({ "metric": metric, "method": "random-forest mean decrease in impurity", "params": params })))
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

pub async fn trial(
    State(d): State<Dashboard>,
    Path((sweep, trial_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    check_name("trial id", &trial_id)?;
    let detail = d.source.trial(&sweep, &trial_id).await?;
    let curves = d.source.curves(&sweep, vec![trial_id.clone()], None).await?;
    let r = &detail.row;
    let attempts: Vec<Value> = detail
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt, "agent": a.agent, "outcome": a.outcome, "exit_code": a.exit_code,
                "signal": a.signal, "error": a.error, "leased_at_ms": a.leased_at_ms,
                "started_at_ms": a.started_at_ms, "finished_at_ms": a.finished_at_ms,
                "epochs": a.epochs.map(|(f, l)| json!([f, l])), "resumed_after_epoch": a.resumed_after_epoch,
            })
        })
        .collect();
    let finals: Map<String, Value> = r.finals.iter().map(|(k, v)| (k.clone(), number(*v))).collect();
    let metrics: Map<String, Value> = curves
        .into_iter()
        .map(|(_, m, points)| (m, Value::Array(points.into_iter().map(|(e, v)| json!([e, number(v)])).collect())))
        .collect();
    // The log a trial leaves with the coordinator: the end of the stderr of each failed attempt.
    let log = detail.attempts.iter().rev().find_map(|a| a.error.clone()).or_else(|| r.last_error.clone());
    Ok(Json(json!({
        "sweep": sweep, "trial_id": r.trial_id, "workload": r.workload, "state": r.status, "attempts_made": r.attempts,
        "agent": r.agent, "started_at_us": r.started_at_us, "finished_at_us": r.finished_at_us,
        "duration_s": r.duration_s.map(number), "exit_code": r.exit_code, "rung": r.rung,
        "parent_trial_id": r.parent_trial_id, "generation": r.generation,
        "params": r.params, "finals": finals, "attempts": attempts, "metrics": metrics, "log": log,
        "live": d.source.is_live(),
    })))
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

/// Actions change sweeps: they come from the page's own script, which sends this header; a form or
/// link on another site cannot.
fn check_action(d: &Dashboard, headers: &HeaderMap) -> Result<(), ApiError> {
    if !d.source.is_live() {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "these sweeps are read from results files: nothing can be changed here",
        ));
    }
    if headers.get("x-sweep-action").is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "actions are sent by the dashboard's page (header x-sweep-action)",
        ));
    }
    Ok(())
}

pub async fn cancel(
    State(d): State<Dashboard>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Path(sweep): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    check_action(&d, &headers)?;
    let super::source::Source::Live { shared, .. } = &d.source else { unreachable!("checked above") };
    let caller = super::auth::caller(caller);
    let by = caller.name().unwrap_or_default().to_string();
    let n = crate::service::sweeps::cancel_all(shared, &sweep, caller).await?;
    tracing::info!(sweep = %sweep, by = %by, trials = n, "sweep cancelled from the dashboard");
    Ok(Json(json!({ "cancelled": n })))
}

pub async fn retry(
    State(d): State<Dashboard>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Path((sweep, trial_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    check_name("trial id", &trial_id)?;
    check_action(&d, &headers)?;
    let super::source::Source::Live { shared, .. } = &d.source else { unreachable!("checked above") };
    let caller = super::auth::caller(caller);
    let by = caller.name().unwrap_or_default().to_string();
    let (name, id) = (sweep.clone(), trial_id.clone());
    let n = shared.write_then_wake_if(move |s, now| s.retry_trial(&name, &id, &caller, now), |n| *n > 0).await?;
    if n > 0 {
        shared.trials_queued();
    }
    tracing::info!(sweep = %sweep, trial = %trial_id, by = %by, "trial retried from the dashboard");
    Ok(Json(json!({ "retried": n })))
}

/// The study's own figures, as `sweep plot` draws them, by file name.
pub async fn plots(State(d): State<Dashboard>, Path(sweep): Path<String>) -> Result<Json<Value>, ApiError> {
    check_sweep(&sweep)?;
    let drawn = d.plots_of(&sweep).await?;
    let names: Vec<&str> = drawn.iter().map(|(n, _)| n.as_str()).collect();
    Ok(Json(json!({ "plots": names })))
}

pub async fn plot(
    State(d): State<Dashboard>,
    Path((sweep, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_sweep(&sweep)?;
    check_name("figure", &file)?;
    let drawn = d.plots_of(&sweep).await?;
    let svg = drawn
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, svg)| svg.clone())
        .ok_or_else(|| ApiError::not_found(format!("sweep {sweep} has no figure named {file}")))?;
    // Shown through <img>, which runs no script; opened on its own, the sandbox keeps any script
    // inside the drawing from running either.
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response())
}
