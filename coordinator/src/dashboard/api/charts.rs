//! The sweep page's charts: the top trials' learning curves, parallel coordinates and parameter
//! importances, each cut to what one chart shows.

use super::{check_name, check_sweep, chosen_metric, goal_of, MAX_PARALLEL, MAX_TOP};
use crate::dashboard::error::ApiError;
use crate::dashboard::table::{number, Cell, SweepTable};
use crate::dashboard::Dashboard;
use axum::extract::{Path, Query, State};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

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
    use crate::dashboard::importance::Feature;
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
    let shares = tokio::task::spawn_blocking(move || crate::dashboard::importance::importance(&features, &target, 0))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut ranked: Vec<(String, f64)> = names.into_iter().zip(shares).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let params: Vec<Value> = ranked.into_iter().map(|(n, s)| json!({ "param": n, "importance": number(s) })).collect();
    Ok(Json(json!({ "metric": metric, "method": "random-forest mean decrease in impurity", "params": params })))
}
