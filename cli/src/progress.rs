//! Live progress of a sweep, drawn from the coordinator's watch stream.

use crate::commands::status::counts_line;
use indicatif::{ProgressBar, ProgressStyle};
use sweep_proto::v1 as pb;

/// Follows the sweep until it is done and returns its last summary.
pub async fn follow(client: &mut crate::client::Client, sweep: &str) -> anyhow::Result<pb::SweepSummary> {
    let mut stream = client
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep.to_string() })
        .await
        .map_err(crate::client::explain)?
        .into_inner();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} finished  {msg}  ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(sweep_spec::text::escape(sweep).into_owned());
    let mut last = pb::SweepSummary::default();
    while let Some(update) = stream.message().await.map_err(crate::client::explain)? {
        let Some(s) = update.summary else { continue };
        let c = s.counts.unwrap_or_default();
        bar.set_length(s.total as u64);
        bar.set_position((c.succeeded + c.failed + c.cancelled + c.stopped) as u64);
        bar.set_message(counts_line(&c));
        last = s;
        if last.done {
            break;
        }
    }
    bar.finish();
    Ok(last)
}
