//! `sweep watch SWEEP`: progress until done, or until the sweep is paused (then an error).

use crate::{client, progress};

pub async fn run(remote: &client::Remote, sweep: &str) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    let last = progress::follow(&mut c, sweep, progress::Lines::Stdout).await?;
    let counts = last.counts.unwrap_or_default();
    if last.state == "paused" {
        crate::commands::status::print_attention(&last);
        anyhow::bail!("sweep {} is paused: {}", sweep, last.pause_reason);
    }
    println!("{}: done: {}", sweep_spec::text::escape(sweep), crate::commands::status::counts_line(&counts));
    Ok(())
}
