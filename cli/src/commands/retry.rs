//! `sweep retry SWEEP [--failed] [--cancelled]`: queue finished trials again with a fresh attempt
//! budget; without either flag, both kinds.

use crate::client;
use sweep_proto::v1 as pb;

pub async fn run(remote: &client::Remote, sweep: &str, failed: bool, cancelled: bool) -> anyhow::Result<()> {
    // Neither flag: both kinds, the usual wish after fixing what made a sweep fail or stop.
    let (failed, cancelled) = if failed || cancelled { (failed, cancelled) } else { (true, true) };
    let mut c = client::connect(remote).await?;
    let req = pb::RetrySweepRequest { sweep_id: sweep.to_string(), failed, cancelled };
    let n = c.retry_sweep(req).await.map_err(client::explain)?.into_inner().trials_retried;
    let which = match (failed, cancelled) {
        (true, true) => "failed or cancelled",
        (true, false) => "failed",
        _ => "cancelled",
    };
    let sweep = sweep_spec::text::escape(sweep);
    if n == 0 {
        println!("{sweep}: no {which} trials to retry");
    } else {
        println!("{sweep}: queued {n} {which} trials again; follow them with `sweep watch {sweep}`");
    }
    Ok(())
}
