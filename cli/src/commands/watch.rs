//! `sweep watch SWEEP [--json]`: progress until done, as a bar or as one JSON object per change;
//! the exit status says whether any trial failed. A paused sweep ends it with an error.

use crate::exit::Ended;
use crate::{client, progress};
use std::io::Write;
use sweep_proto::v1 as pb;

pub async fn run(remote: &client::Remote, sweep: &str, json: bool) -> anyhow::Result<Ended> {
    let mut c = client::connect(remote).await?;
    let last = tokio::select! {
        last = follow(&mut c, sweep, json) => last?,
        // Watching changes nothing on the coordinator: stopping it leaves the sweep running.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopped watching; the sweep goes on (`sweep watch {}` to follow it again)", sweep_spec::text::escape(sweep));
            return Ok(Ended::Interrupted);
        }
    };
    if last.state == "paused" {
        crate::commands::status::print_attention(&last);
        anyhow::bail!(
            "sweep {} is paused: {}",
            sweep_spec::text::escape(sweep),
            sweep_spec::text::escape(&last.pause_reason)
        );
    }
    if !json {
        let counts = last.counts.unwrap_or_default();
        println!("{}: done: {}", sweep_spec::text::escape(sweep), crate::commands::status::counts_line(&counts));
    }
    Ok(Ended::of_sweep(&last))
}

/// Follows until the sweep is done or paused; returns its last summary.
async fn follow(c: &mut client::Client, sweep: &str, json: bool) -> anyhow::Result<pb::SweepSummary> {
    if !json {
        return progress::follow(c, sweep, progress::Lines::Stdout).await;
    }
    let mut stream = c
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep.to_string() })
        .await
        .map_err(client::explain)?
        .into_inner();
    let mut last = pb::SweepSummary::default();
    while let Some(update) = stream.message().await.map_err(client::explain)? {
        let Some(s) = update.summary else { continue };
        let line = serde_json::to_string(&crate::commands::status::summary_json(&s))?;
        // Flushed per line, so a reader piping it sees each change as it comes.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sweep_spec::text::escape_json(&line))?;
        out.flush()?;
        last = s;
        if last.done || last.state == "paused" {
            break;
        }
    }
    Ok(last)
}
