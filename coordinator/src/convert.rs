//! Wire types to domain types and back, and the checks of every request against [`crate::limits`].
//! Nothing past a handler sees a prost type, and nothing unchecked: a bad field is an
//! INVALID_ARGUMENT that names it, never a panic.

use crate::lifecycle::{Policy, TrialState};
use crate::limits::*;
use crate::results::TrialRow;
use crate::scheduler::GpuRoom;
use crate::session::SessionHash;
use crate::store::{AgentRecord, AttemptRecord, MetricWarning, NewSweep, SweepSummary, TrialRecord};
use serde_json::Value;
use sweep_proto::v1 as pb;
use sweep_spec::{EpochRecord, TrialSpec};
use tonic::Status;

/// The domain trial of sweep `sweep`, after checking every field's size and shape, and its id
/// against its content. Errors name the field; [`sweep_from_wire`] adds the trial's position.
pub fn trial_from_wire(sweep: &str, t: pb::Trial) -> Result<TrialSpec, Status> {
    check_trial(&t)?;
    if !t.copy_from_trial_id.is_empty() {
        // Only the coordinator's PBT makes trials that start from another trial's checkpoint.
        return Err(invalid("copy_from_trial_id", "empty: only a PBT schedule makes copies of trials"));
    }
    let spec = t.into_spec(sweep).map_err(Status::invalid_argument)?;
    // Names become an agent's `--name` flags and `SWEEP_PARAM_*` variables.
    sweep_spec::param_names::check(spec.params.keys().map(String::as_str))
        .map_err(|problem| invalid("params_json", problem))?;
    // A built-in workload's values are checked here as well as by the CLI, for every client.
    if let Some(workload) = sweep_spec::workloads::find(&spec.workload) {
        workload
            .check_resolved(&spec.params)
            .map_err(|problem| Status::invalid_argument(format!("params_json: {problem}")))?;
    }
    let id = TrialSpec::content_id(&spec.workload, spec.command.as_deref(), &spec.params, spec.data.as_ref());
    if id != spec.id {
        return Err(Status::invalid_argument(format!(
            "trial {}: id does not match its content (expected {id}); was the sweep expanded by another version?",
            spec.id
        )));
    }
    Ok(spec)
}

fn check_trial(t: &pb::Trial) -> Result<(), Status> {
    check_trial_id("trial_id", &t.trial_id)?;
    check_len("workload", &t.workload, 1, MAX_WORKLOAD_NAME)?;
    let command_bytes = t.command.iter().map(String::len).fold(0usize, usize::saturating_add);
    check_size("command", command_bytes, MAX_TRIAL_FIELD_BYTES, "bytes of arguments")?;
    check_size("params_json", t.params_json.len(), MAX_TRIAL_FIELD_BYTES, "bytes")?;
    check_size("data_json", t.data_json.len(), MAX_TRIAL_FIELD_BYTES, "bytes")?;
    if t.gpus > MAX_GPUS_PER_TRIAL {
        return Err(invalid("gpus", format!("at most {MAX_GPUS_PER_TRIAL}, got {}", t.gpus)));
    }
    let group_size = t.fuse.parse::<u32>().ok().filter(|n| (2..=sweep_spec::Fuse::MAX_MEMBERS).contains(n));
    if !(t.fuse.is_empty() || t.fuse == "auto" || group_size.is_some()) {
        return Err(invalid(
            "fuse",
            format!("\"\", \"auto\" or a group size from 2 to {}, got {:?}", sweep_spec::Fuse::MAX_MEMBERS, t.fuse),
        ));
    }
    if !(t.gpu_share == 0.0 || (t.gpu_share > 0.0 && t.gpu_share < 1.0 && t.gpus == 1)) {
        return Err(invalid(
            "gpu_share",
            format!("0, or a share in (0, 1) of one GPU (gpus = 1), got {}", t.gpu_share),
        ));
    }
    if t.checkpoint_every_epochs > MAX_RETRY_COUNT {
        return Err(invalid(
            "checkpoint_every_epochs",
            format!("at most {MAX_RETRY_COUNT}, got {}", t.checkpoint_every_epochs),
        ));
    }
    Ok(())
}

pub fn sweep_from_wire(r: pb::SubmitSweepRequest) -> Result<NewSweep, Status> {
    check_trial_count(r.trials.len())?;
    let (mut sweep, trials) = sweep_head_from_wire(r)?;
    sweep.trials = trials_from_wire(&sweep.name, trials, 0)?;
    Ok(sweep)
}

/// Trials of one submission, all parts together: at most [`MAX_TRIALS_PER_SUBMIT`].
pub fn check_trial_count(trials: usize) -> Result<(), Status> {
    check_size("trials", trials, MAX_TRIALS_PER_SUBMIT, "trials")
}

/// The sweep a submission names, without trials, and the trials it carries, unchecked.
pub fn sweep_head_from_wire(r: pb::SubmitSweepRequest) -> Result<(NewSweep, Vec<pb::Trial>), Status> {
    check_sweep_name("name", &r.name)?;
    check_size("source", r.source.len(), MAX_SOURCE_BYTES, "bytes")?;
    check_size("source_path", r.source_path.len(), MAX_SOURCE_PATH, "bytes")?;
    if r.max_attempts == 0 || r.max_attempts > MAX_RETRY_COUNT {
        return Err(invalid("max_attempts", format!("1 to {MAX_RETRY_COUNT}, got {}", r.max_attempts)));
    }
    if r.max_lost > MAX_RETRY_COUNT {
        return Err(invalid("max_lost", format!("at most {MAX_RETRY_COUNT}, got {}", r.max_lost)));
    }
    let schedule = schedule_from_wire(&r.schedule_json)?;
    let search = search_from_wire(&r.search_json)?;
    if search.is_some() && schedule.as_ref().is_some_and(|s| s.pbt().is_some()) {
        // PBT makes its own trials from the best ones; TPE would propose others beside them.
        return Err(invalid("search_json", "empty under a PBT schedule"));
    }
    let sweep = NewSweep {
        name: r.name,
        source: r.source,
        source_path: r.source_path,
        policy: Policy { max_attempts: r.max_attempts, max_lost: r.max_lost, retry_backoff_ms: r.retry_backoff_ms },
        // Stored in one canonical form.
        schedule: schedule.map(|s| serde_json::to_string(&s).expect("a schedule serializes")),
        search,
        trials: Vec::new(),
    };
    Ok((sweep, r.trials))
}

/// A submitted schedule, checked as the sweep file's is; empty: none.
fn schedule_from_wire(json: &str) -> Result<Option<sweep_spec::schedule::Schedule>, Status> {
    if json.is_empty() {
        return Ok(None);
    }
    check_size("schedule_json", json.len(), MAX_SCHEDULE_BYTES, "bytes")?;
    let schedule: sweep_spec::schedule::Schedule =
        serde_json::from_str(json).map_err(|e| invalid("schedule_json", format!("a schedule: {e}")))?;
    if !sweep_spec::report::is_valid_metric_name(&schedule.objective.metric) {
        return Err(invalid("schedule_json", "objective.metric: 1 to 256 bytes without control characters"));
    }
    schedule.check().map_err(|(key, expected)| invalid("schedule_json", format!("{key}: {expected}")))?;
    Ok(Some(schedule))
}

/// A submitted TPE plan, checked as the sweep file's is and stored in one canonical form; empty:
/// none. Its parameters' names pass the rules of every trial's (`param_names`), and every
/// distribution can draw.
fn search_from_wire(json: &str) -> Result<Option<String>, Status> {
    if json.is_empty() {
        return Ok(None);
    }
    check_size("search_json", json.len(), MAX_SEARCH_BYTES, "bytes")?;
    let plan: sweep_spec::tpe::Plan =
        serde_json::from_str(json).map_err(|e| invalid("search_json", format!("a TPE plan: {e}")))?;
    if !sweep_spec::report::is_valid_metric_name(&plan.objective.metric) {
        return Err(invalid("search_json", "objective.metric: 1 to 256 bytes without control characters"));
    }
    if plan.trials == 0 || plan.trials > sweep_spec::tpe::MAX_TRIALS {
        return Err(invalid("search_json", format!("trials: 1 to {}", sweep_spec::tpe::MAX_TRIALS)));
    }
    check_size("search_json.space", plan.space.len(), MAX_SEARCH_PARAMS, "parameters")?;
    if plan.space.is_empty() {
        return Err(invalid("search_json", "space: at least one parameter"));
    }
    sweep_spec::param_names::check(plan.space.iter().map(|(k, _)| k.as_str()))
        .map_err(|problem| invalid("search_json", format!("space: {problem}")))?;
    for (name, dist) in &plan.space {
        dist.check().map_err(|expected| {
            invalid("search_json", format!("space.{}: a distribution that can draw: {expected}", quoted(name)))
        })?;
    }
    Ok(Some(serde_json::to_string(&plan).expect("a plan serializes")))
}

/// The domain trials of sweep `sweep`; errors name the trial's position in the whole submission,
/// of which these start at `first`.
pub fn trials_from_wire(sweep: &str, trials: Vec<pb::Trial>, first: usize) -> Result<Vec<TrialSpec>, Status> {
    trials
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            trial_from_wire(sweep, t)
                .map_err(|s| Status::new(s.code(), format!("trials[{}]: {}", first + i, s.message())))
        })
        .collect()
}

pub fn summary_to_wire(s: &SweepSummary) -> pb::SweepSummary {
    pb::SweepSummary {
        sweep_id: s.name.clone(),
        state: s.shown_state().to_string(),
        counts: Some(pb::StateCounts {
            pending: s.count(TrialState::Pending),
            leased: s.count(TrialState::Leased),
            running: s.count(TrialState::Running),
            succeeded: s.count(TrialState::Succeeded),
            failed: s.count(TrialState::Failed),
            cancelled: s.count(TrialState::Cancelled),
            stopped: s.count(TrialState::Stopped),
            stopped_early: s.count(TrialState::StoppedEarly),
            paused: s.count(TrialState::Paused),
        }),
        total: s.total,
        planned: s.planned,
        generation: s.generation,
        done: s.is_done(),
        created_at_ms: s.created_at_ms,
        owner: s.owner.clone().unwrap_or_default(),
        retries: s.retries,
        pause_reason: s.pause_reason.clone().unwrap_or_default(),
        pause_error: s.pause_error.clone().unwrap_or_default(),
        waiting: s.waiting.clone().unwrap_or_default(),
        rungs: s
            .rungs
            .iter()
            .map(|r| pb::RungCount {
                epoch: r.epoch,
                judged: r.judged,
                went_on: r.went_on,
                stopped: r.stopped,
                paused: r.paused,
                promoted: r.promoted,
                exploited: r.exploited,
            })
            .collect(),
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
        warnings: t.warnings,
    }
}

pub fn attempt_to_wire(a: AttemptRecord) -> pb::AttemptInfo {
    pb::AttemptInfo {
        attempt: a.attempt,
        agent: a.agent,
        outcome: a.outcome.unwrap_or_default(),
        exit_code: a.exit_code,
        signal: a.signal,
        error: a.error.unwrap_or_default(),
        leased_at_ms: a.leased_at_ms,
        started_at_ms: a.started_at_ms.unwrap_or_default(),
        finished_at_ms: a.finished_at_ms.unwrap_or_default(),
        first_epoch: a.epochs.map(|(first, _)| first),
        last_epoch: a.epochs.map(|(_, last)| last),
        resumed_after_epoch: a.resumed_after_epoch,
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
        quarantined: a.quarantined,
        consecutive_failures: a.consecutive_failures,
        quarantine_reason: a.quarantine_reason.unwrap_or_default(),
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
        last_error: r.last_error.as_deref().map(crate::results::last_error_cell).unwrap_or_default(),
        exit_code: r.exit_code,
        version: r.version,
        rung: r.rung,
        epochs_budget: r.epochs_budget,
        parent_trial_id: r.parent_trial_id.unwrap_or_default(),
        copied_epoch: r.copied_epoch,
        generation: r.generation.max(0) as u32,
    }
}

/// One epoch of metrics. Values are taken as reported, NaN and ±Inf included (a diverged loss is a
/// result): SQLite stores NaN as NULL, which the store reads back as NaN, and ±Inf as REAL, so all
/// three reach the Parquet files unchanged. [`check_report`] has checked names and counts.
pub fn epoch_from_wire(e: pb::EpochMetrics) -> EpochRecord {
    EpochRecord {
        epoch: e.epoch,
        step: Some(e.step),
        metrics: e.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
    }
}

/// A sweep id in a user's request: a sweep name, so it can never name a folder outside the results.
pub fn check_sweep_name(field: &str, name: &str) -> Result<(), Status> {
    if sweep_spec::file::is_safe_name(name) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("1 to {MAX_SWEEP_NAME} letters, digits, '-', '_' or '.', not starting with '.', got {}", quoted(name)),
    ))
}

/// A trial id: exactly [`TRIAL_ID_LEN`] lowercase hex digits, as `TrialSpec::content_id` makes them.
pub fn check_trial_id(field: &str, id: &str) -> Result<(), Status> {
    if id.len() == TRIAL_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Ok(());
    }
    Err(invalid(field, format!("{TRIAL_ID_LEN} lowercase hex digits, got {}", quoted(id))))
}

/// An agent id or registration name, as `sweep agents --unquarantine` sends it.
pub fn check_agent_name(field: &str, name: &str) -> Result<(), Status> {
    check_text(field, name, 1, crate::limits::MAX_AGENT_ID)
}

pub fn check_register(r: &pb::RegisterRequest) -> Result<(), Status> {
    check_text("name", &r.name, 1, MAX_AGENT_NAME)?;
    check_text("hostname", &r.hostname, 0, MAX_HOSTNAME)?;
    if r.slots > MAX_SLOTS {
        return Err(invalid("slots", format!("at most {MAX_SLOTS}, got {}", r.slots)));
    }
    check_size("gpus", r.gpus.len(), MAX_GPUS as usize, "GPUs")?;
    for (i, gpu) in r.gpus.iter().enumerate() {
        let field = format!("gpus[{i}]");
        check_text(&field, gpu, 1, MAX_GPU_ID)?;
        // The store keeps the list comma-separated.
        if gpu.contains(',') {
            return Err(invalid(&field, format!("a GPU id without ',', got {}", quoted(gpu))));
        }
    }
    Ok(())
}

/// What the store checks of the session secret a call presents: its hash. The secret itself is
/// never echoed in an error. An empty one comes from an agent that predates sessions.
pub fn session(secret: &str) -> Result<SessionHash, Status> {
    if secret.is_empty() {
        return Err(Status::permission_denied(
            "session_secret: missing; every call after Register carries the secret Register answered with (is this sweep-agent older than the coordinator?)",
        ));
    }
    check_size("session_secret", secret.len(), MAX_SESSION_SECRET, "bytes")?;
    Ok(SessionHash::of(secret))
}

pub fn check_lease(r: &pb::LeaseRequest) -> Result<(), Status> {
    check_text("agent_id", &r.agent_id, 1, MAX_AGENT_ID)?;
    if r.free_slots > MAX_SLOTS {
        return Err(invalid("free_slots", format!("at most {MAX_SLOTS}, got {}", r.free_slots)));
    }
    if r.free_gpus > MAX_GPUS {
        return Err(invalid("free_gpus", format!("at most {MAX_GPUS}, got {}", r.free_gpus)));
    }
    check_size("gpu_free_shares", r.gpu_free_shares.len(), MAX_GPUS as usize, "GPUs")?;
    check_size("gpu_free_bytes", r.gpu_free_bytes.len(), MAX_GPUS as usize, "GPUs")?;
    if let Some((i, s)) = r.gpu_free_shares.iter().enumerate().find(|(_, s)| !(0.0..=1.0).contains(*s)) {
        return Err(invalid(&format!("gpu_free_shares[{i}]"), format!("a share in [0, 1], got {s}")));
    }
    if !r.only_sweep.is_empty() {
        check_sweep_name("only_sweep", &r.only_sweep)?;
    }
    Ok(())
}

/// What is left of each of the agent's GPUs: its shares and free memory, or `free_gpus` whole
/// GPUs from an agent that does not report shares.
pub fn gpu_rooms(r: &pb::LeaseRequest) -> Vec<GpuRoom> {
    if r.gpu_free_shares.is_empty() {
        return vec![GpuRoom::FREE; r.free_gpus as usize];
    }
    r.gpu_free_shares
        .iter()
        .enumerate()
        .map(|(i, &share)| GpuRoom { share, free_bytes: r.gpu_free_bytes.get(i).copied().filter(|b| *b > 0) })
        .collect()
}

pub fn check_heartbeat(r: &pb::HeartbeatRequest) -> Result<(), Status> {
    check_text("agent_id", &r.agent_id, 1, MAX_AGENT_ID)?;
    check_size("leases", r.leases.len(), MAX_LEASES_PER_HEARTBEAT, "leases")
}

/// Names and counts of a metrics report. Values are not checked: NaN and ±Inf are stored as such.
pub fn check_report(r: &pb::ReportMetricsRequest) -> Result<(), Status> {
    check_size("epochs", r.epochs.len(), MAX_EPOCHS_PER_REPORT, "epoch records")?;
    check_size("warnings", r.warnings.len(), MAX_WARNINGS_PER_REPORT, "warnings")?;
    for (i, e) in r.epochs.iter().enumerate() {
        check_size(&format!("epochs[{i}].metrics"), e.metrics.len(), MAX_METRICS_PER_EPOCH, "metrics")?;
        for (j, m) in e.metrics.iter().enumerate() {
            check_text(&format!("epochs[{i}].metrics[{j}].name"), &m.name, 1, MAX_METRIC_NAME)?;
        }
    }
    Ok(())
}

/// A report's warnings, their free text cut to its bounds (text is never a reason to refuse).
pub fn warnings_from_wire(warnings: Vec<pb::MetricWarning>) -> Vec<MetricWarning> {
    warnings
        .into_iter()
        .map(|mut w| {
            keep_head(&mut w.field, MAX_WARNING_FIELD);
            keep_head(&mut w.message, MAX_WARNING_MESSAGE);
            MetricWarning { field: w.field, message: w.message }
        })
        .collect()
}

/// Cuts the free text of a completion to its limits (the end of a stderr tail, the start of a
/// launch error) and checks the signal number. Text is never a reason to refuse a completion.
pub fn check_complete(r: &mut pb::CompleteRequest) -> Result<(), Status> {
    if let Some(signal) = r.signal {
        if !(1..=MAX_SIGNAL).contains(&signal) {
            return Err(invalid("signal", format!("a signal number from 1 to {MAX_SIGNAL}, got {signal}")));
        }
    }
    keep_tail(&mut r.stderr_tail, MAX_STDERR_TAIL);
    keep_head(&mut r.launch_error, MAX_LAUNCH_ERROR);
    Ok(())
}

/// Cutting free text to a bound lives with the rules for text shown to people.
pub use sweep_spec::text::{keep_head, keep_tail, CUT};

fn invalid(field: &str, expected: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: expected {expected}"))
}

/// Byte length within `min..=max`.
fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), Status> {
    if (min..=max).contains(&value.len()) {
        return Ok(());
    }
    Err(invalid(field, format!("{min} to {max} bytes, got {} bytes: {}", value.len(), quoted(value))))
}

/// A name shown to people: bounded, and without control characters that drive terminals or
/// bidirectional formatting that makes one name read as another (`sweep_spec::text::is_hidden`).
fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Status> {
    check_len(field, value, min, max)?;
    if value.chars().any(sweep_spec::text::is_hidden) {
        return Err(invalid(
            field,
            format!("text without control or bidirectional formatting characters, got {}", quoted(value)),
        ));
    }
    Ok(())
}

fn check_size(field: &str, got: usize, max: usize, unit: &str) -> Result<(), Status> {
    if got <= max {
        return Ok(());
    }
    Err(invalid(field, format!("at most {max} {unit}, got {got}")))
}

/// `value` for an error message: debug-quoted (control characters escaped, and bidirectional
/// formatting too) and cut to [`QUOTED_CHARS`] characters, so a huge or hostile value cannot bloat
/// the status.
pub(crate) fn quoted(value: &str) -> String {
    let mut shown: String = value.chars().take(QUOTED_CHARS).collect();
    if shown.len() < value.len() {
        shown.push_str(CUT);
    }
    sweep_spec::text::escape(&format!("{shown:?}")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(space: &str) -> String {
        format!(r#"{{"trials":20,"seed":1,"space":{space},"objective":{{"metric":"loss","mode":"min"}}}}"#)
    }

    #[test]
    fn a_submitted_tpe_plan_is_bounded_and_checked() {
        let ok = search_from_wire(&plan(r#"[["x",{"uniform":[0.0,1.0]}],["act",{"choice":["a","b"]}]]"#)).unwrap();
        assert!(ok.unwrap().contains(r#""space":[["x",{"uniform":[0.0,1.0]}]"#));
        assert_eq!(search_from_wire("").unwrap(), None);
        let refused = |json: &str, says: &str| {
            let status = search_from_wire(json).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{json}");
            assert!(status.message().contains(says), "{json}: {}", status.message());
        };
        refused(&plan(&format!(r#"[["x",{{"choice":["{}"]}}]]"#, "a".repeat(MAX_SEARCH_BYTES))), "bytes");
        let many: Vec<String> =
            (0..=MAX_SEARCH_PARAMS).map(|i| format!(r#"["p{i}",{{"uniform":[0.0,1.0]}}]"#)).collect();
        refused(&plan(&format!("[{}]", many.join(","))), "parameters");
        refused(&plan(r#"[["x",{"uniform":[1.0,0.0]}]]"#), "a distribution that can draw");
        refused(&plan(r#"[["x",{"log_uniform":[0.0,1.0]}]]"#), "a distribution that can draw");
        refused(&plan(r#"[["x",{"choice":[]}]]"#), "a distribution that can draw");
        // Spans whose draws would overflow or be infinite, which the sweep file refuses too.
        refused(&plan(&format!(r#"[["x",{{"int_uniform":[{},{}]}}]]"#, i64::MIN, i64::MAX)), "2^63 - 1");
        refused(&plan(r#"[["x",{"uniform":[-1e308,1e308]}]]"#), "a distribution that can draw");
        refused(&plan(r#"[["--x",{"uniform":[0.0,1.0]}]]"#), "space:");
        refused(&plan("[]"), "at least one parameter");
        refused(&plan(r#"[["x",{"uniform":[0.0,1.0]}]]"#).replace(r#""trials":20"#, r#""trials":0"#), "trials");
        refused(&plan(r#"[["x",{"uniform":[0.0,1.0]}]]"#).replace("loss", "lo\\u001b[2Jss"), "objective.metric");
        refused("{", "a TPE plan");
    }

    fn pbt(perturb: &str) -> String {
        format!(
            r#"{{"objective":{{"metric":"loss","mode":"min"}},"kind":"pbt","pbt":{{"interval":2,"max_epochs":10,"quantile":0.25,"resample_probability":0.25,"perturb":{perturb}}}}}"#
        )
    }

    #[test]
    fn a_submitted_pbt_schedule_is_bounded_and_checked() {
        let ok = schedule_from_wire(&pbt(r#"[["optimizer.lr",{"log_uniform":[1e-4,0.1]}]]"#)).unwrap().unwrap();
        assert!(ok.pbt().is_some(), "{ok:?}");
        let refused = |json: &str, says: &str| {
            let status = schedule_from_wire(json).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{json}");
            assert!(status.message().contains(says), "{json}: {}", status.message());
        };
        refused(&pbt("[]"), "perturb");
        refused(&pbt(r#"[["x",{"uniform":[1.0,0.0]}]]"#), "perturb: x");
        refused(&pbt(r#"[["--x",{"uniform":[0.0,1.0]}]]"#), "perturb");
        let many: Vec<String> = (0..=sweep_spec::schedule::pbt::MAX_PERTURBED)
            .map(|i| format!(r#"["p{i}",{{"uniform":[0.0,1.0]}}]"#))
            .collect();
        refused(&pbt(&format!("[{}]", many.join(","))), "at most 64 parameters");
        refused(&pbt(&format!(r#"[["x",{{"choice":["{}"]}}]]"#, "a".repeat(MAX_SCHEDULE_BYTES))), "bytes");
        refused(
            &pbt(r#"[["x",{"uniform":[0.0,1.0]}]]"#).replace(r#""quantile":0.25"#, r#""quantile":0.9"#),
            "quantile",
        );
    }
}
