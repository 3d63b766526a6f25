//! What the page may change: cancel a sweep, retry a trial, as the CLI's owner check allows.

use super::{check_name, check_sweep};
use crate::auth::Caller;
use crate::dashboard::error::ApiError;
use crate::dashboard::Dashboard;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

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
    let crate::dashboard::source::Source::Live { shared, .. } = &d.source else { unreachable!("checked above") };
    let caller = crate::dashboard::auth::caller(caller);
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
    let crate::dashboard::source::Source::Live { shared, .. } = &d.source else { unreachable!("checked above") };
    let caller = crate::dashboard::auth::caller(caller);
    let by = caller.name().unwrap_or_default().to_string();
    let (name, id) = (sweep.clone(), trial_id.clone());
    let n = shared.write_then_wake_if(move |s, now| s.retry_trial(&name, &id, &caller, now), |n| *n > 0).await?;
    if n > 0 {
        shared.trials_queued();
    }
    tracing::info!(sweep = %sweep, trial = %trial_id, by = %by, "trial retried from the dashboard");
    Ok(Json(json!({ "retried": n })))
}
