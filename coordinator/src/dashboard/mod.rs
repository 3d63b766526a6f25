//! The web dashboard: a page for a running sweep, served on the coordinator's HTTP port beside
//! `/metrics` (and by `sweep ui` from results files). It shows the sweeps, a sweep's trial table,
//! learning curves that grow while trials run, parallel coordinates, parameter importances and the
//! study's own figures, a trial's attempts and log, and the agents. It takes the gRPC API's user
//! tokens, works offline (every script is in the binary) and can cancel a sweep or retry a trial.

mod api;
pub mod archive;
mod assets;
mod auth;
mod error;
mod events;
mod hours;
pub mod importance;
mod query;
pub mod source;
mod table;

use crate::auth::Tokens;
use crate::shared::Shared;
use axum::routing::{get, post};
use error::ApiError;
use source::Source;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use archive::Archive;
pub use assets::escape;

/// Draws a sweep's figures as `sweep plot` does: (file name, SVG) for each. Given by the `sweep`
/// binary, which holds the plotting code.
pub type DrawPlots = Arc<dyn Fn(&str) -> anyhow::Result<Vec<(String, Vec<u8>)>> + Send + Sync>;

type Drawn = Arc<Vec<(String, Vec<u8>)>>;
/// Figures with the trial version and metric row they were drawn at.
type DrawnAt = ((i64, i64), Drawn);

#[derive(Clone)]
pub struct Dashboard {
    source: Source,
    tokens: Tokens,
    feed: Option<events::Feed>,
    plots: Option<DrawPlots>,
    /// Figures drawn for a sweep, with the trial version and metric row they were drawn at.
    drawn: Arc<Mutex<HashMap<String, DrawnAt>>>,
}

impl Dashboard {
    /// The dashboard of a running coordinator: live, and able to act.
    pub fn live(shared: Shared, tokens: Tokens) -> Dashboard {
        let feed = events::Feed::follow(shared.clone());
        let source = Source::live(shared);
        tokio::spawn(keep_warm(source.clone(), feed.cursors()));
        Dashboard { source, tokens, feed: Some(feed), plots: None, drawn: Arc::default() }
    }

    /// The dashboard of results files: read-only, and still.
    pub fn archived(archive: Archive, tokens: Tokens) -> Dashboard {
        Dashboard { source: Source::Archive(Arc::new(archive)), tokens, feed: None, plots: None, drawn: Arc::default() }
    }

    pub fn with_plots(mut self, plots: DrawPlots) -> Dashboard {
        self.plots = Some(plots);
        self
    }

    /// The pages, their assets and their API. Everything but the login page needs a user token
    /// when tokens are configured.
    pub fn router(self) -> axum::Router {
        let guarded = axum::Router::new()
            .route("/", get(|| async { axum::response::Redirect::to("/ui/") }))
            .route("/ui", get(|| async { axum::response::Redirect::to("/ui/") }))
            .route("/ui/", get(assets::index))
            .route("/ui/assets/{file}", get(assets::asset))
            .route("/api/session", get(api::session))
            .route("/api/sweeps", get(api::sweeps))
            .route("/api/sweeps/{sweep}", get(api::sweep))
            .route("/api/sweeps/{sweep}/trials", get(api::trials))
            .route("/api/sweeps/{sweep}/curves", get(api::curves))
            .route("/api/sweeps/{sweep}/parallel", get(api::parallel))
            .route("/api/sweeps/{sweep}/importance", get(api::importance))
            .route("/api/sweeps/{sweep}/decisions", get(api::decisions))
            .route("/api/sweeps/{sweep}/plots", get(api::plots))
            .route("/api/sweeps/{sweep}/plots/{file}", get(api::plot))
            .route("/api/sweeps/{sweep}/trials/{trial}", get(api::trial))
            .route("/api/sweeps/{sweep}/cancel", post(api::cancel))
            .route("/api/sweeps/{sweep}/trials/{trial}/retry", post(api::retry))
            .route("/api/agents", get(api::agents))
            .route("/api/events", get(api::events))
            .route_layer(axum::middleware::from_fn_with_state(self.clone(), auth::require_user));
        axum::Router::new()
            .route("/ui/login", get(auth::login_form).post(auth::login))
            .route("/ui/logout", get(auth::logout))
            .merge(guarded)
            .layer(axum::extract::DefaultBodyLimit::max(auth::MAX_TOKEN_BYTES * 4))
            .with_state(self)
    }

    /// The figures of `sweep`, drawn again only when its trials or metrics changed since.
    async fn plots_of(&self, sweep: &str) -> Result<Drawn, ApiError> {
        let Some(draw) = self.plots.clone() else { return Ok(Drawn::default()) };
        let at = {
            let table = self.source.table(sweep).await?;
            let t = table.lock().await;
            (t.version, t.metric_seq)
        };
        if let Some((drawn_at, drawn)) = self.drawn.lock().unwrap_or_else(|p| p.into_inner()).get(sweep) {
            if *drawn_at == at || !self.source.is_live() {
                return Ok(drawn.clone());
            }
        }
        let name = sweep.to_string();
        let drawn = tokio::task::spawn_blocking(move || draw(&name))
            .await
            .map_err(|e| ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| {
                ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, format!("drawing the figures: {e:#}"))
            })?;
        let drawn = Arc::new(drawn);
        self.drawn.lock().unwrap_or_else(|p| p.into_inner()).insert(sweep.to_string(), (at, drawn.clone()));
        Ok(drawn)
    }
}

/// Fills the tables of sweeps that still run as soon as the feed sees them, so the first look at a
/// big running sweep does not wait for its trials to be read (1.8 s at 100,000 trials, BENCHMARKS.md).
async fn keep_warm(source: Source, mut cursors: tokio::sync::watch::Receiver<events::Cursors>) {
    let mut seen = std::collections::HashSet::new();
    loop {
        let now = cursors.borrow_and_update().clone();
        for (name, c) in now.iter() {
            if c.3 && seen.insert(name.clone()) {
                if let Err(e) = source.table(name).await {
                    tracing::debug!(sweep = %name, error = %e.message, "the dashboard could not read the sweep's trials ahead");
                }
            }
        }
        if cursors.changed().await.is_err() {
            return;
        }
    }
}

/// Serves `dashboard` (with `/healthz`) on `listener` until `stop` resolves: `sweep ui`'s server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dashboard: Dashboard,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = dashboard.router().route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app).with_graceful_shutdown(stop).await
}
