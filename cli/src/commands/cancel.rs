//! `sweep cancel SWEEP`.

use crate::client;
use sweep_proto::v1 as pb;

pub async fn run(remote: &client::Remote, sweep: &str) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    let resp = c.cancel_sweep(pb::CancelSweepRequest { sweep_id: sweep.to_string() }).await.map_err(client::explain)?;
    println!("cancelled {} unfinished trials of {sweep}", resp.into_inner().trials_cancelled);
    Ok(())
}
