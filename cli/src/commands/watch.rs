//! `sweep watch SWEEP`: progress until done.

use crate::{client, progress};

pub async fn run(url: &str, sweep: &str) -> anyhow::Result<()> {
    let mut c = client::connect(url).await?;
    let last = progress::follow(&mut c, sweep).await?;
    let counts = last.counts.unwrap_or_default();
    println!("{sweep}: done: {}", crate::commands::status::counts_line(&counts));
    Ok(())
}
