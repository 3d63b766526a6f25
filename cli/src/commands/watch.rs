//! `sweep watch SWEEP`: progress until done; the exit status says whether any trial failed.

use crate::exit::Ended;
use crate::{client, progress};

pub async fn run(remote: &client::Remote, sweep: &str) -> anyhow::Result<Ended> {
    let mut c = client::connect(remote).await?;
    let last = tokio::select! {
        last = progress::follow(&mut c, sweep) => last?,
        // Watching changes nothing on the coordinator: stopping it leaves the sweep running.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopped watching; the sweep goes on (`sweep watch {}` to follow it again)", sweep_spec::text::escape(sweep));
            return Ok(Ended::Interrupted);
        }
    };
    let counts = last.counts.unwrap_or_default();
    println!("{}: done: {}", sweep_spec::text::escape(sweep), crate::commands::status::counts_line(&counts));
    Ok(Ended::of_sweep(&last))
}
