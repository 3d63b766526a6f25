//! The study's own figures, as `sweep plot` draws them, served as SVG.

use super::{check_name, check_sweep};
use crate::dashboard::error::ApiError;
use crate::dashboard::Dashboard;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header;
use serde_json::{json, Value};

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
