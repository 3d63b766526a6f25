//! The trial table, paged, sorted and filtered on the server, and one trial's page.

use super::{check_name, check_sweep, MAX_METRIC_COLUMNS};
use crate::dashboard::error::ApiError;
use crate::dashboard::query::{self, Ask, Key};
use crate::dashboard::table::number;
use crate::dashboard::Dashboard;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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
