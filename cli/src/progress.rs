//! Live progress of a sweep, drawn from the coordinator's watch stream. Where no bar can be drawn
//! (output to a file or a pipe), a plain line every [`PLAIN_LINE_EVERY`] says the same, so a log
//! shows a sweep that waits as well as one that moves.

use crate::commands::status::counts_line;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use sweep_proto::v1 as pb;
use sweep_spec::text::escape;

/// The text after the bar: the counts per state, and the retries when there were any.
pub fn progress_message(s: &pb::SweepSummary) -> String {
    let counts = counts_line(&s.counts.unwrap_or_default());
    match s.retries {
        0 => counts,
        1 => format!("{counts} · 1 retry"),
        n => format!("{counts} · {n} retries"),
    }
}

/// How often a plain progress line is printed when the output is not a terminal.
pub const PLAIN_LINE_EVERY: Duration = Duration::from_secs(10);

/// Where plain progress lines go: `watch` prints them on stdout, `local` on stderr (its stdout is
/// the results table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Stdout,
    // Only `sweep local` prints here, which a CLI built without the embedded agent lacks.
    #[cfg_attr(not(feature = "embedded-agent"), allow(dead_code))]
    Stderr,
}

impl Lines {
    /// Plain lines are printed when their stream is not a terminal, or no bar can be drawn (the
    /// bar goes to stderr).
    fn wanted(self) -> bool {
        !std::io::stderr().is_terminal()
            || match self {
                Lines::Stdout => !std::io::stdout().is_terminal(),
                Lines::Stderr => !std::io::stderr().is_terminal(),
            }
    }

    fn print(self, line: &str) {
        match self {
            Lines::Stdout => println!("{line}"),
            Lines::Stderr => eprintln!("{line}"),
        }
    }
}

/// Follows the sweep until it is done or paused and returns its last summary (state `paused`:
/// see its `pause_reason`). Warns when its pending trials have no agent to run them.
pub async fn follow(client: &mut crate::client::Client, sweep: &str, lines: Lines) -> anyhow::Result<pb::SweepSummary> {
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
    let plain = lines.wanted();
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PLAIN_LINE_EVERY, PLAIN_LINE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = pb::SweepSummary::default();
    loop {
        let update = tokio::select! {
            update = stream.message() => update.map_err(crate::client::explain)?,
            _ = ticks.tick(), if plain => {
                if !last.sweep_id.is_empty() {
                    lines.print(&plain_line(sweep, &last, started.elapsed()));
                }
                continue;
            }
        };
        let Some(update) = update else { break };
        let Some(s) = update.summary else { continue };
        let c = s.counts.unwrap_or_default();
        // The message first: a redraw between the calls then shows the new counts with the old
        // position, never a full bar beside trials still running.
        bar.set_message(progress_message(&s));
        bar.set_length(s.total.max(s.planned) as u64);
        bar.set_position(crate::commands::status::finished(&c) as u64);
        if !shown {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        if plain && last.sweep_id.is_empty() {
            lines.print(&plain_line(sweep, &s, started.elapsed()));
        }
        if !s.waiting.is_empty() && s.waiting != last.waiting {
            bar.suspend(|| {
                eprintln!("warning: {} pending trials have no agent to run them: {}", c.pending, escape(&s.waiting))
            });
        }
        last = s;
        if last.done || last.state == "paused" {
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

/// `sweep-a: 12/40 finished · running 4 · pending 24 … (1m30s)`, with a reminder while pending
/// trials have no agent.
fn plain_line(sweep: &str, s: &pb::SweepSummary, elapsed: Duration) -> String {
    let c = s.counts.unwrap_or_default();
    let finished = crate::commands::status::finished(&c);
    let secs = elapsed.as_secs();
    let mut line = format!(
        "{}: {finished}/{} finished · {} ({}m{:02}s)",
        escape(sweep),
        s.total.max(s.planned),
        progress_message(s),
        secs / 60,
        secs % 60
    );
    if !s.waiting.is_empty() {
        line.push_str(" · waiting: no agent can run the pending trials");
    }
    line
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
