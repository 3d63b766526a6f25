//! Wire types to domain types and back. Nothing past a handler sees a prost type.

use crate::lifecycle::{Policy, TrialState};
use crate::results::TrialRow;
use crate::store::{AgentRecord, NewSweep, SweepSummary, TrialRecord};
use serde_json::{Map, Value};
use sweep_proto::v1 as pb;
use sweep_spec::{DataRef, EpochRecord, Resources, TrialId, TrialSpec};
use tonic::Status;

fn json_object(field: &str, text: &str) -> Result<Map<String, Value>, Status> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Status::invalid_argument(format!("{field}: expected a JSON object"))),
    }
}

pub fn trial_from_wire(sweep: &str, t: pb::Trial) -> Result<TrialSpec, Status> {
    let params = json_object("params_json", &t.params_json)?;
    let data: Option<DataRef> = if t.data_json.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&t.data_json).map_err(|e| Status::invalid_argument(format!("data_json: {e}")))?)
    };
    let command = (!t.command.is_empty()).then_some(t.command);
    let id = TrialSpec::content_id(&t.workload, command.as_deref(), &params, data.as_ref());
    if id.0 != t.trial_id {
        return Err(Status::invalid_argument(format!(
            "trial {}: id does not match its content (expected {id}); was the sweep expanded by another version?",
            t.trial_id
        )));
    }
    Ok(TrialSpec {
        id: TrialId(t.trial_id),
        sweep: sweep.to_string(),
        index: t.index,
        workload: t.workload,
        command,
        params,
        data,
        resources: Resources { gpus: t.gpus },
        checkpoint_every_epochs: (t.checkpoint_every_epochs > 0).then_some(t.checkpoint_every_epochs),
    })
}

pub fn trial_to_wire(t: &TrialSpec) -> pb::Trial {
    pb::Trial {
        trial_id: t.id.0.clone(),
        index: t.index,
        workload: t.workload.clone(),
        command: t.command.clone().unwrap_or_default(),
        params_json: Value::Object(t.params.clone()).to_string(),
        data_json: t.data.as_ref().map(|d| serde_json::to_string(d).expect("data serializes")).unwrap_or_default(),
        gpus: t.resources.gpus,
        checkpoint_every_epochs: t.checkpoint_every_epochs.unwrap_or(0),
    }
}

pub fn sweep_from_wire(r: pb::SubmitSweepRequest) -> Result<NewSweep, Status> {
    if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || r.name.starts_with('.') {
        return Err(Status::invalid_argument(format!("sweep name `{}`: expected letters, digits, '-', '_' or '.'", r.name)));
    }
    if r.max_attempts == 0 {
        return Err(Status::invalid_argument("max_attempts: expected at least 1"));
    }
    let trials = r.trials.into_iter().map(|t| trial_from_wire(&r.name, t)).collect::<Result<Vec<_>, _>>()?;
    Ok(NewSweep {
        name: r.name,
        source: r.source,
        source_path: r.source_path,
        policy: Policy { max_attempts: r.max_attempts, max_lost: r.max_lost },
        trials,
    })
}

pub fn summary_to_wire(s: &SweepSummary) -> pb::SweepSummary {
    pb::SweepSummary {
        sweep_id: s.name.clone(),
        state: s.state.clone(),
        counts: Some(pb::StateCounts {
            pending: s.count(TrialState::Pending),
            leased: s.count(TrialState::Leased),
            running: s.count(TrialState::Running),
            succeeded: s.count(TrialState::Succeeded),
            failed: s.count(TrialState::Failed),
            cancelled: s.count(TrialState::Cancelled),
            stopped: s.count(TrialState::Stopped),
        }),
        total: s.total,
        done: s.is_done(),
        created_at_ms: s.created_at_ms,
    }
}

pub fn trial_status_to_wire(t: TrialRecord) -> pb::TrialStatus {
    pb::TrialStatus {
        trial_id: t.trial_id,
        index: t.index,
        state: t.state.as_str().to_string(),
        attempt: t.attempt,
        agent: t.agent.unwrap_or_default(),
        last_error: t.last_error.unwrap_or_default(),
        params_json: t.params_json,
    }
}

pub fn agent_to_wire(a: AgentRecord) -> pb::AgentInfo {
    pb::AgentInfo { agent_id: a.id, hostname: a.hostname, slots: a.slots, gpus: a.gpus, last_seen_ms: a.last_seen_ms, running: a.running }
}

pub fn result_to_wire(index: u32, r: TrialRow) -> pb::TrialResult {
    pb::TrialResult {
        trial_id: r.trial_id,
        workload: r.workload,
        status: r.status,
        attempts: r.attempts.max(0) as u32,
        agent: r.agent.unwrap_or_default(),
        started_at_ms: r.started_at_us.map_or(0, |us| us / 1000),
        finished_at_ms: r.finished_at_us.map_or(0, |us| us / 1000),
        params_json: Value::Object(r.params).to_string(),
        finals: r.finals.into_iter().collect(),
        index,
    }
}

pub fn epoch_from_wire(e: pb::EpochMetrics) -> EpochRecord {
    EpochRecord {
        epoch: e.epoch,
        step: Some(e.step),
        metrics: e.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
    }
}
