//! `sweep status SWEEP TRIAL`: one trial with every attempt, where it ran, how it ended, the
//! epochs it reported, and whether it resumed from a checkpoint or started over.

use crate::client;
use serde_json::{json, Value};
use sweep_proto::v1 as pb;
use sweep_spec::text::{escape, escape_json};

pub async fn run(remote: &client::Remote, sweep: &str, trial: &str, as_json: bool) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    let req = pb::GetTrialRequest { sweep_id: sweep.to_string(), trial_id: trial.to_string() };
    let resp = c.get_trial(req).await.map_err(client::explain)?.into_inner();
    let t = resp.trial.unwrap_or_default();
    if as_json {
        let out = json!({
            "sweep": sweep,
            "trial_id": t.trial_id,
            "index": t.index,
            "state": t.state,
            "attempts": resp.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
            "last_error": t.last_error,
            "params": serde_json::from_str::<Value>(&t.params_json).unwrap_or(Value::Null),
        });
        println!("{}", escape_json(&serde_json::to_string_pretty(&out)?));
        return Ok(());
    }
    println!("trial {} of {}: {} after {} attempts", escape(&t.trial_id), escape(sweep), escape(&t.state), t.attempt);
    println!("params {}", escape(&t.params_json));
    println!(
        "{:<8} {:<24} {:<10} {:<6} {:<8} {:<16} {:>8}",
        "attempt", "agent", "outcome", "exit", "epochs", "start", "took"
    );
    for a in &resp.attempts {
        println!(
            "{:<8} {:<24} {:<10} {:<6} {:<8} {:<16} {:>8}",
            a.attempt,
            escape(&a.agent),
            escape(if a.outcome.is_empty() { "running" } else { &a.outcome }),
            ended(a),
            epochs(a),
            start(a),
            took(a),
        );
        if let Some(line) = a.error.lines().rev().find(|l| !l.trim().is_empty()) {
            println!("         {}", escape(line));
        }
    }
    Ok(())
}

fn attempt_json(a: &pb::AttemptInfo) -> Value {
    json!({
        "attempt": a.attempt,
        "agent": a.agent,
        "outcome": a.outcome,
        "exit_code": a.exit_code,
        "signal": a.signal,
        "error": a.error,
        "first_epoch": a.first_epoch,
        "last_epoch": a.last_epoch,
        "resumed_after_epoch": a.resumed_after_epoch,
        "leased_at_ms": a.leased_at_ms,
        "started_at_ms": a.started_at_ms,
        "finished_at_ms": a.finished_at_ms,
    })
}

/// `0`, `sig 9` or `-`.
fn ended(a: &pb::AttemptInfo) -> String {
    match (a.exit_code, a.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("sig {signal}"),
        (None, None) => "-".into(),
    }
}

fn epochs(a: &pb::AttemptInfo) -> String {
    match (a.first_epoch, a.last_epoch) {
        (Some(first), Some(last)) if first == last => first.to_string(),
        (Some(first), Some(last)) => format!("{first}-{last}"),
        _ => "-".into(),
    }
}

/// `resumed after 4`, `from scratch`, or `-` when it reported nothing.
fn start(a: &pb::AttemptInfo) -> String {
    match (a.resumed_after_epoch, a.first_epoch) {
        (Some(epoch), _) => format!("resumed after {epoch}"),
        (None, Some(_)) => "from scratch".into(),
        (None, None) => "-".into(),
    }
}

fn took(a: &pb::AttemptInfo) -> String {
    if a.finished_at_ms == 0 || a.leased_at_ms == 0 {
        return "-".into();
    }
    let s = (a.finished_at_ms - a.leased_at_ms).max(0) as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1}s")
    } else {
        format!("{:.1}m", s / 60.0)
    }
}
