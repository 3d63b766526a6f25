//! `sweep status [SWEEP] [--json]`. Names and error text come from other machines; the text
//! output shows them through `escape`, so they cannot drive the terminal.

use crate::client;
use serde_json::{json, Value};
use sweep_proto::v1 as pb;
use sweep_spec::text::{escape, escape_json};

pub fn counts_json(c: &pb::StateCounts) -> Value {
    json!({
        "pending": c.pending,
        "leased": c.leased,
        "running": c.running,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "cancelled": c.cancelled,
        "stopped": c.stopped,
        "stopped_early": c.stopped_early,
        "paused": c.paused,
    })
}

/// Trials that have finished, whichever way.
pub fn finished(c: &pb::StateCounts) -> u32 {
    c.succeeded + c.failed + c.cancelled + c.stopped + c.stopped_early
}

/// The sweep's state as shown: `done` once nothing is waiting or running, whatever an older
/// coordinator that still says `active` sends.
fn state_shown(s: &pb::SweepSummary) -> &str {
    if s.done && s.state == "active" {
        "done"
    } else {
        &s.state
    }
}

pub fn summary_json(s: &pb::SweepSummary) -> Value {
    json!({
        "sweep": s.sweep_id,
        "state": state_shown(s),
        "owner": s.owner,
        "counts": counts_json(&s.counts.unwrap_or_default()),
        "total": s.total,
        "done": s.done,
        "retries": s.retries,
        "pause_reason": s.pause_reason,
        "pause_error": s.pause_error,
        "waiting": s.waiting,
        "rungs": s.rungs.iter().map(|r| json!({"epoch": r.epoch, "judged": r.judged, "went_on": r.went_on, "stopped": r.stopped, "paused": r.paused, "promoted": r.promoted, "exploited": r.exploited})).collect::<Vec<_>>(),
        "generation": s.generation,
    })
}

fn agents_json(agents: &[pb::AgentInfo]) -> Value {
    agents.iter().map(super::agents::agent_json).collect()
}

/// Why a sweep is paused and its common error, and why its pending trials wait: printed under
/// its line by `status` and by `watch`. Both texts come from the coordinator and trial output.
pub fn print_attention(s: &pb::SweepSummary) {
    if let Some(line) = rungs_line(&s.rungs) {
        println!("  {line}");
    }
    if s.generation > 0 {
        println!("  pbt: generation {} (the most copies behind any trial)", s.generation);
    }
    if s.state == "paused" {
        println!("  paused: {}", escape(&s.pause_reason));
        if !s.pause_error.is_empty() {
            println!("  last error: {}", escape(s.pause_error.trim()));
        }
        println!(
            "  fix the cause, then `sweep resume {}` (or `sweep submit --force` the fixed file)",
            escape(&s.sweep_id)
        );
    }
    if !s.waiting.is_empty() {
        println!(
            "  warning: {} pending trials have no agent to run them: {}",
            s.counts.unwrap_or_default().pending,
            escape(&s.waiting)
        );
    }
}

/// Rungs `sweep status` shows at most, the latest.
const RUNGS_SHOWN: usize = 6;

/// `rungs: epoch 1: 27 judged, 9 went on, 18 paused (4 promoted) · epoch 3: …`: what the sweep's
/// schedule decided so far.
pub fn rungs_line(rungs: &[pb::RungCount]) -> Option<String> {
    if rungs.is_empty() {
        return None;
    }
    // Median stopping judges at every epoch: the latest rungs say where the sweep stands.
    let shown = &rungs[rungs.len().saturating_sub(RUNGS_SHOWN)..];
    let more = if shown.len() < rungs.len() {
        format!("{} more before · ", rungs.len() - shown.len())
    } else {
        String::new()
    };
    let parts: Vec<String> = shown
        .iter()
        .map(|r| {
            let paused =
                if r.paused > 0 { format!(", {} paused ({} promoted)", r.paused, r.promoted) } else { String::new() };
            let exploited =
                if r.exploited > 0 { format!(", {} replaced by copies", r.exploited) } else { String::new() };
            format!("epoch {}: {} judged, {} went on{paused}{exploited}", r.epoch, r.judged, r.went_on)
        })
        .collect();
    Some(format!("rungs: {more}{}", parts.join(" · ")))
}

/// `running 2 · pending 5 · succeeded 10 …`, leaving out zero counts.
pub fn counts_line(c: &pb::StateCounts) -> String {
    let parts = [
        ("running", c.running + c.leased),
        ("pending", c.pending),
        ("succeeded", c.succeeded),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
        ("stopped", c.stopped),
        ("stopped early", c.stopped_early),
        ("paused", c.paused),
    ];
    let shown: Vec<String> = parts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    if shown.is_empty() {
        "no trials".to_string()
    } else {
        shown.join(" · ")
    }
}

pub async fn run(remote: &client::Remote, sweep: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    match sweep {
        None => {
            let resp = c.list_sweeps(pb::ListSweepsRequest {}).await.map_err(client::explain)?.into_inner();
            if as_json {
                let out = json!({"sweeps": resp.sweeps.iter().map(summary_json).collect::<Vec<_>>(), "agents": agents_json(&resp.agents)});
                println!("{}", escape_json(&serde_json::to_string_pretty(&out)?));
                return Ok(());
            }
            if resp.sweeps.is_empty() {
                println!("no sweeps yet: submit one with `sweep submit FILE`");
            }
            for s in &resp.sweeps {
                let done = state_shown(s);
                println!(
                    "{:<32} {:<16} {:>6} trials  {:<9} {}",
                    escape(&s.sweep_id),
                    escape(owner_shown(&s.owner)),
                    s.total,
                    escape(done),
                    counts_line(&s.counts.unwrap_or_default())
                );
                print_attention(s);
            }
            super::agents::print_agents(&resp.agents);
        }
        Some(name) => {
            let resp = sweep_with_all_trials(&mut c, name).await?;
            let summary = resp.summary.unwrap_or_default();
            if as_json {
                let mut out = summary_json(&summary);
                out["trials"] = resp
                    .trials
                    .iter()
                    .map(|t| {
                        json!({
                            "trial_id": t.trial_id,
                            "index": t.index,
                            "state": t.state,
                            "attempts": t.attempt,
                            "agent": t.agent,
                            "last_error": t.last_error,
                            "warnings": t.warnings,
                            "params": serde_json::from_str::<Value>(&t.params_json).unwrap_or(Value::Null),
                        })
                    })
                    .collect();
                out["agents"] = agents_json(&resp.agents);
                println!("{}", escape_json(&serde_json::to_string_pretty(&out)?));
                return Ok(());
            }
            println!(
                "{} ({}, by {}): {} trials, {}",
                escape(&summary.sweep_id),
                escape(state_shown(&summary)),
                escape(owner_shown(&summary.owner)),
                summary.total,
                counts_line(&summary.counts.unwrap_or_default())
            );
            print_attention(&summary);
            let params: Vec<String> = resp.trials.iter().map(|t| params_cell(&t.params_json)).collect();
            let width = params.iter().map(|p| p.chars().count()).max().unwrap_or(0);
            for (t, params) in resp.trials.iter().zip(&params) {
                let error = error_summary(&t.last_error);
                println!(
                    "  {}  {params:<width$}  {:<10} attempt {:<2} {:<20} {}",
                    escape(&t.trial_id),
                    escape(&t.state),
                    t.attempt,
                    escape(&t.agent),
                    escape(&error)
                );
                for warning in &t.warnings {
                    println!("      warning: {}", escape(warning));
                }
            }
            super::agents::print_agents(&resp.agents);
        }
    }
    Ok(())
}

/// Widest parameters cell of `sweep status SWEEP`; longer ones end in `…`.
const PARAMS_CELL_CHARS: usize = 48;

/// A trial's parameters as `width=40 seed=0`, escaped, at most [`PARAMS_CELL_CHARS`] wide.
fn params_cell(params_json: &str) -> String {
    let Ok(Value::Object(params)) = serde_json::from_str::<Value>(params_json) else { return String::new() };
    let text = params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let text = escape(&text);
    if text.chars().count() <= PARAMS_CELL_CHARS {
        return text.into_owned();
    }
    let cut: String = text.chars().take(PARAMS_CELL_CHARS - 1).collect();
    format!("{cut}…")
}

/// One line for a trial's error: its first line (the exit, or why it could not start) and, when
/// stderr followed, its last (where a traceback names the exception).
fn error_summary(error: &str) -> String {
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next_back()) {
        (Some(first), Some(last)) => format!("{first} … {last}"),
        (Some(first), None) => first.to_string(),
        _ => String::new(),
    }
}

/// The owner column: the submitting token's name, `-` where none was recorded.
fn owner_shown(owner: &str) -> &str {
    if owner.is_empty() {
        "-"
    } else {
        owner
    }
}

/// The sweep with every trial, asked for page by page: a page holds at most 10,000.
async fn sweep_with_all_trials(c: &mut client::Client, name: &str) -> anyhow::Result<pb::GetSweepResponse> {
    let ask = |trials_offset| pb::GetSweepRequest { sweep_id: name.to_string(), trials_offset, ..Default::default() };
    let mut resp = c.get_sweep(ask(0)).await.map_err(client::explain)?.into_inner();
    let mut next = resp.trials_next_offset;
    while next > 0 {
        let page = c.get_sweep(ask(next)).await.map_err(client::explain)?.into_inner();
        resp.trials.extend(page.trials);
        next = if page.trials_next_offset > next { page.trials_next_offset } else { 0 };
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_params_cell_is_escaped_and_bounded() {
        assert_eq!(params_cell(r#"{"seed":0,"width":40,"opt":"adam"}"#), "opt=adam seed=0 width=40");
        let hostile = params_cell(r#"{"name":"a\u001b[31mb"}"#);
        assert!(hostile.starts_with("name=a") && !hostile.contains('\u{1b}'), "{hostile}");
        let long = params_cell(&serde_json::json!({ "path": "x".repeat(500) }).to_string());
        assert_eq!(long.chars().count(), PARAMS_CELL_CHARS);
        assert!(long.ends_with('…'));
        assert_eq!(params_cell("not json"), "");
    }

    #[test]
    fn a_finished_active_sweep_is_shown_as_done() {
        let s = pb::SweepSummary { state: "active".into(), done: true, ..Default::default() };
        assert_eq!(summary_json(&s)["state"], "done");
        let s = pb::SweepSummary { state: "cancelled".into(), done: true, ..Default::default() };
        assert_eq!(summary_json(&s)["state"], "cancelled");
        let s = pb::SweepSummary { state: "active".into(), done: false, ..Default::default() };
        assert_eq!(summary_json(&s)["state"], "active");
    }
}
