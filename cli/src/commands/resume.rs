//! `sweep resume SWEEP`: lease a paused sweep's pending trials again.

use crate::client;
use sweep_proto::v1 as pb;
use sweep_spec::text::escape;

pub async fn run(remote: &client::Remote, sweep: &str) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    c.resume_sweep(pb::ResumeSweepRequest { sweep_id: sweep.to_string() }).await.map_err(client::explain)?;
    println!(
        "resumed {}: its pending trials are leased again; follow it with `sweep watch {}`",
        escape(sweep),
        escape(sweep)
    );
    Ok(())
}
