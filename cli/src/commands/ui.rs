//! `sweep ui`: the web dashboard of finished sweeps, read from their results files with no
//! coordinator. Read-only: it shows what the files hold and changes nothing.

use super::plot::{dashboard_figures, FigureArgs};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use sweep_coordinator::auth::Tokens;
use sweep_coordinator::dashboard::{self, Archive, Dashboard};

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Folder of results: every `<DIR>/<sweep>/trials.parquet` in it is shown.
    #[arg(long, env = "SWEEP_RESULTS", default_value = "results")]
    results: PathBuf,
    /// Address to serve on. Keep it on loopback (and reach it over `ssh -L`), or give
    /// --user-tokens: without them anyone who reaches the port can read the results.
    #[arg(long, env = "SWEEP_UI_LISTEN", default_value = "127.0.0.1:8765")]
    listen: String,
    /// File of user tokens (`NAME:TOKEN` per line, as the coordinator's --user-tokens): the
    /// dashboard asks for one of them.
    #[arg(long, env = "SWEEP_USER_TOKENS")]
    user_tokens: Option<PathBuf>,
    #[command(flatten)]
    figures: FigureArgs,
}

pub async fn run(args: UiArgs) -> anyhow::Result<()> {
    let tokens = Tokens::load_users(args.user_tokens.as_deref(), false).map_err(anyhow::Error::msg)?;
    let root = args.results.clone();
    let archive = tokio::task::spawn_blocking(move || Archive::read(&root))
        .await
        .context("reading the results")?
        .map_err(anyhow::Error::msg)?;
    if archive.sweeps.is_empty() {
        anyhow::bail!(
            "{}: no sweep's results here (no <sweep>/trials.parquet); run one with `sweep local FILE`, or point --results at the folder that holds them",
            args.results.display()
        );
    }
    let sweeps = archive.sweeps.len();
    let figures = dashboard_figures(args.results.clone(), args.figures.checkpoints, args.figures.font);
    let dashboard = Dashboard::archived(archive, tokens).with_plots(figures);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {} (another `sweep ui`? choose another with --listen)", args.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && args.user_tokens.is_none() {
        eprintln!(
            "warning: sweep ui serves {addr}, off this machine, without --user-tokens: anyone who reaches the port can read these results"
        );
    }
    eprintln!(
        "sweep ui: {sweeps} sweep{} from {}, read-only, at http://{addr}/ui/ (Ctrl-C stops)",
        if sweeps == 1 { "" } else { "s" },
        args.results.display()
    );
    dashboard::serve(listener, dashboard, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving the dashboard")
}
