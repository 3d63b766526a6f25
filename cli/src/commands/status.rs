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
    })
}

fn summary_json(s: &pb::SweepSummary) -> Value {
    json!({
        "sweep": s.sweep_id,
        "state": s.state,
        "owner": s.owner,
        "counts": counts_json(&s.counts.unwrap_or_default()),
        "total": s.total,
        "done": s.done,
    })
}

fn agents_json(agents: &[pb::AgentInfo]) -> Value {
    agents
        .iter()
        .map(|a| json!({"agent_id": a.agent_id, "hostname": a.hostname, "slots": a.slots, "gpus": a.gpus, "running": a.running, "last_seen_ms": a.last_seen_ms, "quarantined": a.quarantined, "consecutive_failures": a.consecutive_failures}))
        .collect()
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
                let done = if s.done { "done" } else { &s.state };
                println!(
                    "{:<32} {:<16} {:>6} trials  {:<9} {}",
                    escape(&s.sweep_id),
                    escape(&owner_shown(&s.owner)),
                    s.total,
                    escape(done),
                    counts_line(&s.counts.unwrap_or_default())
                );
            }
            print_agents(&resp.agents);
        }
        Some(name) => {
            let resp = c
                .get_sweep(pb::GetSweepRequest { sweep_id: name.to_string() })
                .await
                .map_err(client::explain)?
                .into_inner();
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
                escape(&summary.state),
                escape(&owner_shown(&summary.owner)),
                summary.total,
                counts_line(&summary.counts.unwrap_or_default())
            );
            for t in &resp.trials {
                let error = error_summary(&t.last_error);
                println!(
                    "  {}  {:<10} attempt {:<2} {:<20} {}",
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
            print_agents(&resp.agents);
        }
    }
    Ok(())
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

fn print_agents(agents: &[pb::AgentInfo]) {
    if agents.is_empty() {
        println!("no agents connected: start `sweep-agent --coordinator URL` on a node");
        return;
    }
    println!("agents:");
    for a in agents {
        let gpus = if a.gpus.is_empty() { "cpu".to_string() } else { format!("gpus {}", escape(&a.gpus.join(","))) };
        let health = if a.quarantined {
            format!(
                ", QUARANTINED after {} failed attempts in a row (restart the agent once the node is fixed)",
                a.consecutive_failures
            )
        } else {
            String::new()
        };
        println!(
            "  {:<24} {:<16} {} of {} slots busy, {}{health}",
            escape(&a.agent_id),
            escape(&a.hostname),
            a.running,
            a.slots,
            gpus
        );
    }
}
