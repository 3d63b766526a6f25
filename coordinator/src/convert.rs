//! Wire types to domain types and back. Nothing past a handler sees a prost type.

use crate::lifecycle::{Policy, TrialState};
use crate::results::TrialRow;
use crate::store::{AgentRecord, NewSweep, SweepSummary, TrialRecord};
use serde_json::Value;
use sweep_proto::v1 as pb;
use sweep_spec::{EpochRecord, TrialSpec};
use tonic::Status;

pub fn trial_from_wire(sweep: &str, t: pb::Trial) -> Result<TrialSpec, Status> {
    let spec = t.into_spec(sweep).map_err(Status::invalid_argument)?;
    let id = TrialSpec::content_id(&spec.workload, spec.command.as_deref(), &spec.params, spec.data.as_ref());
    if id != spec.id {
        return Err(Status::invalid_argument(format!(
            "trial {}: id does not match its content (expected {id}); was the sweep expanded by another version?",
            spec.id
        )));
    }
    Ok(spec)
}

pub fn sweep_from_wire(r: pb::SubmitSweepRequest) -> Result<NewSweep, Status> {
    if r.name.is_empty()
        || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || r.name.starts_with('.')
    {
        return Err(Status::invalid_argument(format!(
            "sweep name `{}`: expected letters, digits, '-', '_' or '.'",
            r.name
        )));
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
    pb::AgentInfo {
        agent_id: a.id,
        hostname: a.hostname,
        slots: a.slots,
        gpus: a.gpus,
        last_seen_ms: a.last_seen_ms,
        running: a.running,
    }
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
