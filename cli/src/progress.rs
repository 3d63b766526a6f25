//! Live progress of a sweep, drawn from the coordinator's watch stream.

use crate::commands::status::counts_line;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sweep_proto::v1 as pb;

/// The text after the bar: the counts per state, and the retries when there were any.
pub fn progress_message(s: &pb::SweepSummary) -> String {
    let counts = counts_line(&s.counts.unwrap_or_default());
    match s.retries {
        0 => counts,
        1 => format!("{counts} · 1 retry"),
        n => format!("{counts} · {n} retries"),
    }
}

/// Follows the sweep until it is done and returns its last summary.
pub async fn follow(client: &mut crate::client::Client, sweep: &str) -> anyhow::Result<pb::SweepSummary> {
    let mut stream = client
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep.to_string() })
        .await
        .map_err(crate::client::explain)?
        .into_inner();
    // Hidden until the first summary says how many trials there are: no empty bar at 0/0.
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} finished  {msg}  ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(sweep_spec::text::escape(sweep).into_owned());
    let mut shown = false;
    let mut last = pb::SweepSummary::default();
    while let Some(update) = stream.message().await.map_err(crate::client::explain)? {
        let Some(s) = update.summary else { continue };
        let c = s.counts.unwrap_or_default();
        // The message first: a redraw between the calls then shows the new counts with the old
        // position, never a full bar beside trials still running.
        bar.set_message(progress_message(&s));
        bar.set_length(s.total as u64);
        bar.set_position((c.succeeded + c.failed + c.cancelled + c.stopped) as u64);
        if !shown {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        last = s;
        if last.done {
            break;
        }
    }
    bar.finish();
    // What follows (the results table, the last counts) starts on a line of its own.
    if !bar.is_hidden() {
        eprintln!();
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_shows_retries_only_when_there_were_some() {
        let counts = pb::StateCounts { running: 1, succeeded: 2, ..Default::default() };
        let mut s = pb::SweepSummary { counts: Some(counts), total: 3, ..Default::default() };
        assert_eq!(progress_message(&s), "running 1 · succeeded 2");
        s.retries = 1;
        assert_eq!(progress_message(&s), "running 1 · succeeded 2 · 1 retry");
        s.retries = 4;
        assert_eq!(progress_message(&s), "running 1 · succeeded 2 · 4 retries");
    }
}
