//! Live progress of a sweep, drawn from the coordinator's watch stream. Where no bar can be drawn
//! (output to a file or a pipe), a plain line every [`PLAIN_LINE_EVERY`] says the same, so a log
//! shows a sweep that waits as well as one that moves.

use crate::commands::status::counts_line;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use sweep_proto::v1 as pb;
use sweep_spec::text::escape;

/// How often a plain progress line is printed when the output is not a terminal.
pub const PLAIN_LINE_EVERY: Duration = Duration::from_secs(10);

/// Where plain progress lines go: `watch` prints them on stdout, `local` on stderr (its stdout is
/// the results table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Stdout,
    Stderr,
}

impl Lines {
    /// Plain lines are printed when their stream is not a terminal, or no bar can be drawn.
    fn wanted(self, bar: &ProgressBar) -> bool {
        bar.is_hidden()
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
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} finished  {msg}  ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(sweep_spec::text::escape(sweep).into_owned());
    let plain = lines.wanted(&bar);
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
        bar.set_length(s.total as u64);
        bar.set_position((c.succeeded + c.failed + c.cancelled + c.stopped) as u64);
        bar.set_message(counts_line(&c));
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
    Ok(last)
}

/// `sweep-a: 12/40 finished · running 4 · pending 24 … (1m30s)`, with a reminder while pending
/// trials have no agent.
fn plain_line(sweep: &str, s: &pb::SweepSummary, elapsed: Duration) -> String {
    let c = s.counts.unwrap_or_default();
    let finished = c.succeeded + c.failed + c.cancelled + c.stopped;
    let secs = elapsed.as_secs();
    let mut line = format!(
        "{}: {finished}/{} finished · {} ({}m{:02}s)",
        escape(sweep),
        s.total,
        counts_line(&c),
        secs / 60,
        secs % 60
    );
    if !s.waiting.is_empty() {
        line.push_str(" · waiting: no agent can run the pending trials");
    }
    line
}
