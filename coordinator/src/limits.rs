//! Every bound the coordinator puts on what a client sends, in one place. `convert.rs` checks them
//! at the boundary, so a handler past it sees only input of bounded size and with the right shape.
//!
//! A request over a limit is refused with INVALID_ARGUMENT naming the field, not with
//! RESOURCE_EXHAUSTED: agents retry RESOURCE_EXHAUSTED (it usually means a quota that frees up),
//! while an oversized request stays oversized. Free text (stderr tails, launch errors) is truncated
//! instead: losing the middle of a log must not lose the attempt's outcome.

/// Sweep names: the sweep-spec rule, because the name becomes a results and checkpoint folder.
pub const MAX_SWEEP_NAME: usize = sweep_spec::file::MAX_NAME_LEN;
/// Trial ids are the first 16 hex digits of a SHA-256 (`TrialSpec::content_id`), in lower case.
pub const TRIAL_ID_LEN: usize = 16;
/// Agent names, as the agent registers them.
pub const MAX_AGENT_NAME: usize = 256;
/// Agent ids are `<name>-<n>`: the name, a dash and a decimal counter.
pub const MAX_AGENT_ID: usize = MAX_AGENT_NAME + 21;
/// An agent's session secret: the hex of [`crate::session::SECRET_BYTES`] random bytes.
pub const MAX_SESSION_SECRET: usize = 2 * crate::session::SECRET_BYTES;
/// Host names (a DNS name is at most 253 characters).
pub const MAX_HOSTNAME: usize = 256;
/// One GPU's id as the agent lists it (`0`, `GPU-<uuid>`, `MIG-<uuid>`).
pub const MAX_GPU_ID: usize = 256;
/// Slots an agent offers, GPUs it lists, and free slots or GPUs it asks leases for.
pub const MAX_SLOTS: u32 = 4096;
/// GPUs one agent lists or asks for.
pub const MAX_GPUS: u32 = 4096;
/// GPUs one trial needs: the sweep file's `resources.gpus` bound.
pub const MAX_GPUS_PER_TRIAL: u32 = sweep_spec::file::MAX_GPUS_PER_TRIAL;
/// How long a lease call may wait for work (`LeaseRequest.wait_ms`): well within the agents'
/// call timeout.
pub const MAX_LEASE_WAIT_MS: u32 = 10_000;
/// Leases one heartbeat reports: an agent holds at most one per slot.
pub const MAX_LEASES_PER_HEARTBEAT: usize = MAX_SLOTS as usize;
/// Distinct metric names per sweep unless `--max-metric-names` says otherwise: room for the
/// per-class accuracies (`class_acc/<class>`) of a 1,000-class model and the usual metrics beside.
pub const DEFAULT_MAX_METRIC_NAMES: u32 = 2048;
/// Metric names: the metric protocol's bound, so an agent drops a record with a longer name
/// instead of sending it.
pub const MAX_METRIC_NAME: usize = sweep_spec::report::MAX_METRIC_NAME;
/// Parameter names, in a trial's `params_json`: the sweep file's bound.
pub const MAX_PARAM_NAME: usize = sweep_spec::param_names::MAX_LEN;
/// Epoch records in one `ReportMetrics` call (the agent sends at most 256).
pub const MAX_EPOCHS_PER_REPORT: usize = 10_000;
/// Metrics in one epoch record (per-class accuracies of a 21k-class model still fit).
pub const MAX_METRICS_PER_EPOCH: usize = 65_536;
/// Trials in one `SubmitSweep`: as many as one sweep file may expand to.
pub const MAX_TRIALS_PER_SUBMIT: usize = sweep_spec::expand::MAX_TRIALS;
/// Trials in one part of `SubmitSweepStream`, and in one `SubmitSweep` stored in one transaction;
/// a larger `SubmitSweep` is stored in parts of this size, as if streamed.
pub const MAX_TRIALS_PER_PART: usize = sweep_proto::submit::TRIALS_PER_PART;
/// How long `SubmitSweepStream` waits for the next part before it drops what it received: a
/// client that stopped sending without hanging up does not keep its trials staged for ever.
pub const MAX_WAIT_FOR_PART: std::time::Duration = std::time::Duration::from_secs(60);
/// Submissions in parts being received at once; one more is refused with RESOURCE_EXHAUSTED
/// until one ends, so staged trials cannot fill the disk.
pub const MAX_UPLOADS_IN_FLIGHT: usize = 8;
/// Bytes of one trial's command (all arguments together), of its `params_json` and of its
/// `data_json`, each.
pub const MAX_TRIAL_FIELD_BYTES: usize = 64 * 1024;
/// Workload names (the catalogue's are a dozen characters).
pub const MAX_WORKLOAD_NAME: usize = 256;
/// `retry.max_attempts`, `retry.max_lost` and `retry.checkpoint_every_epochs`: the sweep file's bound.
pub const MAX_RETRY_COUNT: u32 = 1_000_000;
/// The sweep file's text, kept with the sweep for the record.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;
/// The sweep file's path (Linux's PATH_MAX).
pub const MAX_SOURCE_PATH: usize = 4096;
/// Bytes of a sweep's schedule as JSON (a metric name and a few numbers; under PBT also the
/// perturbed parameters, at most `schedule::pbt::MAX_PERTURBED`, with their distributions).
pub const MAX_SCHEDULE_BYTES: usize = 64 * 1024;
/// Bytes of a TPE sweep's plan as JSON (its space: parameter names, bounds, choices).
pub const MAX_SEARCH_BYTES: usize = 64 * 1024;
/// Parameters a TPE space may vary.
pub const MAX_SEARCH_PARAMS: usize = 64;
/// A stderr tail is cut to its last this many bytes: the end of a log says why a process died.
pub const MAX_STDERR_TAIL: usize = 16 * 1024;
/// A launch error is cut to its first this many bytes: its start names what could not be run.
pub const MAX_LAUNCH_ERROR: usize = 4 * 1024;
/// Warnings about metrics an agent could not record, per report call.
pub const MAX_WARNINGS_PER_REPORT: usize = 16;
/// Warnings kept per trial (one per metric name): enough to name every bad field of a script,
/// bounded whatever it prints.
pub const MAX_WARNINGS_PER_TRIAL: i64 = 16;
/// A warning's field name is cut to its first this many bytes, its message to [`MAX_WARNING_MESSAGE`].
pub const MAX_WARNING_FIELD: usize = 256;
pub const MAX_WARNING_MESSAGE: usize = 512;
/// Signal numbers (Linux's real-time signals end at 64).
pub const MAX_SIGNAL: i32 = 64;
/// How much of an offending value an error message quotes.
pub const QUOTED_CHARS: usize = 64;
