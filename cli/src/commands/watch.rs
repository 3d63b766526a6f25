//! `sweep watch SWEEP`: progress until done.

use crate::{client, progress};

pub async fn run(remote: &client::Remote, sweep: &str) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    let last = progress::follow(&mut c, sweep).await?;
    let counts = last.counts.unwrap_or_default();
    println!("{}: done: {}", sweep_spec::text::escape(sweep), crate::commands::status::counts_line(&counts));
    Ok(())
}
