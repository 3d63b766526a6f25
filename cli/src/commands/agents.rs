//! `sweep agents [--unquarantine NAME] [--json]`: the agents, their state and failures, and letting
//! one out of quarantine. Agent names and the quarantine evidence come from other machines; they
//! are shown through `escape`.

use crate::client;
use serde_json::{json, Value};
use sweep_proto::v1 as pb;
use sweep_spec::text::{escape, escape_json};

pub async fn run(remote: &client::Remote, unquarantine: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let mut c = client::connect(remote).await?;
    if let Some(name) = unquarantine {
        let freed = c
            .unquarantine_agent(pb::UnquarantineAgentRequest { agent: name.to_string() })
            .await
            .map_err(client::explain)?
            .into_inner()
            .agent_ids;
        if freed.is_empty() {
            println!("{} was not quarantined", escape(name));
        }
        for id in &freed {
            println!("{} is out of quarantine: it leases trials again", escape(id));
        }
        return Ok(());
    }
    let agents = c.list_agents(pb::ListAgentsRequest {}).await.map_err(client::explain)?.into_inner().agents;
    if as_json {
        let out: Value = agents.iter().map(agent_json).collect();
        println!("{}", escape_json(&serde_json::to_string_pretty(&out)?));
        return Ok(());
    }
    print_agents(&agents);
    Ok(())
}

/// `ok`, or `quarantined`.
pub fn state(a: &pb::AgentInfo) -> &'static str {
    if a.quarantined {
        "quarantined"
    } else {
        "ok"
    }
}

pub fn agent_json(a: &pb::AgentInfo) -> Value {
    json!({
        "agent_id": a.agent_id,
        "hostname": a.hostname,
        "state": state(a),
        "slots": a.slots,
        "gpus": a.gpus,
        "running": a.running,
        "last_seen_ms": a.last_seen_ms,
        "quarantined": a.quarantined,
        "quarantine_reason": a.quarantine_reason,
        "consecutive_failures": a.consecutive_failures,
    })
}

/// One line per agent, and the evidence under a quarantined one.
pub fn print_agents(agents: &[pb::AgentInfo]) {
    if agents.is_empty() {
        println!("no agents connected: start `sweep-agent --coordinator URL` on a node");
        return;
    }
    println!("agents:");
    for a in agents {
        let gpus = if a.gpus.is_empty() { "cpu".to_string() } else { format!("gpus {}", escape(&a.gpus.join(","))) };
        println!(
            "  {:<24} {:<16} {:<11} {} of {} slots busy, {}, {} failed in a row",
            escape(&a.agent_id),
            escape(&a.hostname),
            state(a),
            a.running,
            a.slots,
            gpus,
            a.consecutive_failures
        );
        if a.quarantined {
            println!("      quarantined: {}", escape(&a.quarantine_reason));
            println!("      once the node is fixed: sweep agents --unquarantine {}", escape(&a.agent_id));
        }
    }
}
