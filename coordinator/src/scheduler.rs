//! Scheduling decisions as plain functions of the state and `now`: which pending trials an agent
//! gets, what a heartbeat tells an agent about each of its leases, whose fault failed trials are (an
//! agent is quarantined, a sweep is paused), and why pending trials may have nobody to run them.
//! How large a fused group may be is decided in `fused_sizing`.

use crate::lifecycle::{Exit, TrialState};
use sweep_spec::packing;

/// A pending trial (or fused group), in queue order (oldest sweep first, then expansion order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Whole GPUs it needs.
    pub gpus: u32,
    /// Packing: the fraction of one GPU it needs instead of whole ones.
    pub share: Option<f64>,
    /// GPU memory it peaked at in earlier attempts, when known.
    pub memory_bytes: Option<u64>,
}

impl Candidate {
    pub fn whole(gpus: u32) -> Candidate {
        Candidate { gpus, share: None, memory_bytes: None }
    }
}

/// What is left of one of the agent's GPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuRoom {
    /// The share not given to trials yet: 1 when the GPU is free.
    pub share: f64,
    /// Free memory the driver reported, when known.
    pub free_bytes: Option<u64>,
}

impl GpuRoom {
    pub const FREE: GpuRoom = GpuRoom { share: 1.0, free_bytes: None };

    fn is_free(&self) -> bool {
        packing::is_free(self.share)
    }

    fn has_room(&self) -> bool {
        self.share > 0.0
    }
}

/// How many of the agent's GPUs have any room left: a pending trial that needs more whole GPUs is
/// not worth reading.
pub fn gpus_with_room(gpus: &[GpuRoom]) -> u32 {
    gpus.iter().filter(|g| g.has_room()).count() as u32
}

/// The most memory free on one of the agent's GPUs with room left, where the driver said: the
/// largest fused group the agent could hold (`fused_sizing::group_size`).
pub fn most_free_bytes(gpus: &[GpuRoom]) -> Option<u64> {
    gpus.iter().filter(|g| g.has_room()).filter_map(|g| g.free_bytes).max()
}

/// Pending trials (or fused groups) read per free slot. `choose` skips a candidate that does not fit
/// what is left of the agent's GPUs, so it is offered more candidates than slots to fill them.
pub const CANDIDATES_PER_SLOT: u32 = 4;

/// How many candidates to read for an agent with `free_slots`.
pub fn candidates_to_read(free_slots: u32) -> usize {
    free_slots.saturating_mul(CANDIDATES_PER_SLOT) as usize
}

/// Indices of the candidates to lease, first come first served, within the agent's free slots and
/// GPUs. A trial that needs more than is left is skipped, not waited for, so small trials behind it
/// still start. Whole-GPU trials take free GPUs, lowest first; a shared trial takes the fullest GPU
/// that still has its share and, when both are known, its memory (best fit, so shared trials pack
/// onto few GPUs and leave whole ones free).
pub fn choose(candidates: &[Candidate], free_slots: u32, gpus: &mut [GpuRoom]) -> Vec<usize> {
    let mut chosen = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if chosen.len() as u32 >= free_slots {
            break;
        }
        match c.share {
            None => {
                let free: Vec<usize> = (0..gpus.len()).filter(|&g| gpus[g].is_free()).take(c.gpus as usize).collect();
                if free.len() == c.gpus as usize {
                    for g in free {
                        gpus[g].share = 0.0;
                    }
                    chosen.push(i);
                }
            }
            Some(share) => {
                let memory_fits = |g: usize| match (gpus[g].free_bytes, c.memory_bytes) {
                    (Some(free), Some(need)) => free >= need,
                    _ => true,
                };
                if let Some(g) = packing::fullest_fitting(gpus.iter().map(|r| r.share), share, memory_fits) {
                    gpus[g].share -= share;
                    if let (Some(free), Some(need)) = (gpus[g].free_bytes.as_mut(), c.memory_bytes) {
                        *free -= need;
                    }
                    chosen.push(i);
                }
            }
        }
    }
    chosen
}

/// What the agent holding `lease_id` must do, given the trial's current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseVerdict {
    /// Still the trial's lease: extend it.
    Extend,
    /// The trial was cancelled, or stopped by its sweep's schedule, while this lease ran: stop it.
    Stop,
    /// Not the trial's lease any more (expired, superseded, finished): kill it, report nothing.
    Abandon,
}

pub fn judge_lease(state: TrialState, current_lease: Option<i64>, lease_id: i64) -> LeaseVerdict {
    match (state, current_lease == Some(lease_id)) {
        (TrialState::Leased | TrialState::Running, true) => LeaseVerdict::Extend,
        (TrialState::Cancelled | TrialState::StoppedEarly, true) => LeaseVerdict::Stop,
        _ => LeaseVerdict::Abandon,
    }
}

/// What a metrics report under a lease may still do to its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAdmission {
    /// Add its rows, and move the trial's final values.
    Rows,
    /// Add its rows, which move a final value only past its epoch, and decide nothing.
    RowsOnly,
    /// Nothing: the trial's results are final.
    Refused,
}

/// What a metrics report under `lease_id` may do. Until the trial has finished, everything, under
/// any of its attempts: late rows of an expired attempt are kept. A cancelled trial's attempt that
/// is still being stopped (its lease still current) records the epochs it completes before it
/// stops. Once the trial has finished, its outcome is fixed: the attempt that finished it may send
/// nothing more, while the late rows of an attempt it superseded (`superseded`: a later attempt
/// was leased) are still kept, since the retry may have resumed past them from a checkpoint and
/// they exist nowhere else.
pub fn admit_rows(state: TrialState, current_lease: Option<i64>, lease_id: i64, superseded: bool) -> RowAdmission {
    if !state.is_terminal() || judge_lease(state, current_lease, lease_id) == LeaseVerdict::Stop {
        RowAdmission::Rows
    } else if superseded {
        RowAdmission::RowsOnly
    } else {
        RowAdmission::Refused
    }
}

/// When a failed trial may run again: exponential backoff with full jitter from the sweep's
/// base, capped, so a broken trial does not spin and a flaky one retries soon.
pub fn retry_not_before(now_ms: i64, user_failures: u32, base_ms: u32, unit: f64) -> i64 {
    let delay = sweep_spec::backoff::full_jitter(
        user_failures.saturating_sub(1),
        std::time::Duration::from_millis(base_ms as u64),
        RETRY_BACKOFF_CAP,
        unit,
    );
    now_ms + delay.as_millis() as i64
}

/// Longest wait before a retry, however often the trial failed.
pub const RETRY_BACKOFF_CAP: std::time::Duration = std::time::Duration::from_secs(300);

/// What is known about one failed attempt of an agent's current run of failures (since its last
/// success): whether the trial, or at least its sweep, succeeded on another agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureEvidence {
    /// Another attempt of the same trial succeeded on another agent.
    pub trial_succeeded_elsewhere: bool,
    /// Another attempt of the same trial failed on another agent as well.
    pub trial_failed_elsewhere: bool,
    /// Some trial of the same sweep succeeded on another agent.
    pub sweep_succeeded_elsewhere: bool,
}

/// Whether a failed attempt is evidence against its node rather than against the user's code: the
/// very trial succeeded on another agent, or its sweep succeeds on other agents and this trial did
/// not fail there too. A sweep that fails everywhere blames no node (see [`should_pause`]), so a
/// user's broken script cannot quarantine the cluster.
pub fn blames_node(e: FailureEvidence) -> bool {
    e.trial_succeeded_elsewhere || (e.sweep_succeeded_elsewhere && !e.trial_failed_elsewhere)
}

/// How many of an agent's most recent failed attempts (since its last success) are weighed per
/// quarantine decision, as a multiple of `--quarantine-after`: bounds the work of a lease request
/// from an agent that ran a long series of broken sweeps.
pub const QUARANTINE_WINDOW_FACTOR: u32 = 4;

/// Whether an agent with `blamed` failed attempts that blame its node ([`blames_node`]) since its
/// last success gets no more leases. `after = 0` turns quarantine off.
pub fn is_quarantined(blamed: u32, after: u32) -> bool {
    after > 0 && blamed >= after
}

/// Whether a sweep is the cause of its own failures and stops being leased (`paused`): since it
/// was submitted or last resumed none of its attempts succeeded, `failures` failed (exit codes,
/// bad configurations), and they failed on `distinct_agents` different agents: two, or one where
/// only one agent can run trials (`eligible_agents`: alive and not quarantined, as under
/// `sweep local --agents 1`). Failures on quarantined agents are left out by the caller.
/// `after = 0` turns pausing off.
pub fn should_pause(failures: u32, distinct_agents: u32, eligible_agents: u32, after: u32) -> bool {
    after > 0 && failures >= after && distinct_agents >= eligible_agents.clamp(1, 2)
}

/// Why pending trials wait with nobody to run them, or None when some agent could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No agent was heard from recently.
    NoAgents,
    /// Every agent heard from is quarantined.
    AllQuarantined { quarantined: u32 },
    /// The pending trials need more GPUs than any agent that may run them has.
    TooFewGpus { needed: u32, most: u32 },
}

/// Whether pending trials needing up to `max_gpus_needed` GPUs (the fewest any of them needs:
/// `min_gpus_needed`) can be run by the agents alive, given as (GPUs, quarantined) per agent.
pub fn stall(pending: u32, min_gpus_needed: u32, agents: &[(u32, bool)]) -> Option<Stall> {
    if pending == 0 {
        return None;
    }
    if agents.is_empty() {
        return Some(Stall::NoAgents);
    }
    let eligible: Vec<u32> = agents.iter().filter(|(_, q)| !q).map(|(g, _)| *g).collect();
    if eligible.is_empty() {
        return Some(Stall::AllQuarantined { quarantined: agents.len() as u32 });
    }
    let most = eligible.iter().copied().max().unwrap_or(0);
    (most < min_gpus_needed).then_some(Stall::TooFewGpus { needed: min_gpus_needed, most })
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::NoAgents => write!(f, "no agent is connected: start `sweep-agent --coordinator URL` on a node"),
            Stall::AllQuarantined { quarantined } => write!(
                f,
                "all {quarantined} agents are quarantined: see `sweep agents`, fix the nodes, then `sweep agents --unquarantine NAME`"
            ),
            Stall::TooFewGpus { needed, most } => write!(
                f,
                "pending trials need {needed} GPUs but the agents that may run them have at most {most}"
            ),
        }
    }
}

/// What an attempt's end does to its agent's run of failed attempts (`is_quarantined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streak {
    /// One more failure in a row.
    Lengthen,
    /// A success ends the run.
    Reset,
    /// The exit says nothing about the node.
    Keep,
}

/// Failures of the trial's code, OOM and processes that could not start lengthen an agent's run of
/// failures; a success ends it. Bad configurations, stops and fused groups that ran out of memory or
/// failed as a whole say nothing about the node: the group's size was the coordinator's choice.
pub fn streak_after(exit: Exit) -> Streak {
    match exit {
        Exit::Failure | Exit::OutOfMemory => Streak::Lengthen,
        Exit::Success => Streak::Reset,
        Exit::BadConfig | Exit::StoppedOnRequest | Exit::GroupOutOfMemory | Exit::GroupFailure => Streak::Keep,
    }
}

/// A lease whose deadline has passed is lost. Heartbeats move deadlines; nothing else does.
pub fn is_expired(deadline_ms: i64, now_ms: i64) -> bool {
    deadline_ms <= now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(n: usize) -> Vec<GpuRoom> {
        vec![GpuRoom::FREE; n]
    }

    #[test]
    fn choose_respects_slots_and_gpus() {
        let c = Candidate::whole;
        assert_eq!(choose(&[c(0), c(0), c(0)], 2, &mut free(0)), vec![0, 1]);
        assert_eq!(choose(&[c(2), c(1), c(1), c(0)], 4, &mut free(2)), vec![0, 3]);
        assert_eq!(choose(&[c(4), c(1)], 4, &mut free(2)), vec![1], "a big trial does not block small ones");
        assert!(choose(&[c(0)], 0, &mut free(8)).is_empty());
    }

    #[test]
    fn shared_trials_pack_onto_the_fullest_gpu_that_fits() {
        let share = |s: f64| Candidate { gpus: 1, share: Some(s), memory_bytes: None };
        let mut gpus = free(2);
        let chosen = choose(&[share(0.25), share(0.25), Candidate::whole(1), share(0.5), share(0.25)], 8, &mut gpus);
        assert_eq!(chosen, vec![0, 1, 2, 3], "four shares fill GPU 0; the whole trial takes GPU 1");
        assert!(gpus.iter().all(|g| g.share.abs() < 1e-9), "{gpus:?}");
        // Ten tenths fit on one GPU despite rounding.
        let tenths: Vec<Candidate> = (0..11).map(|_| share(0.1)).collect();
        assert_eq!(choose(&tenths, 16, &mut free(1)).len(), 10);
        // A GPU with a shared trial is not free for a whole-GPU trial.
        let mut gpus = vec![GpuRoom { share: 0.75, free_bytes: None }];
        assert!(choose(&[Candidate::whole(1)], 1, &mut gpus).is_empty());
    }

    #[test]
    fn shared_trials_fit_the_memory_they_needed_before() {
        let need = |bytes: u64| Candidate { gpus: 1, share: Some(0.25), memory_bytes: Some(bytes) };
        let mut gpus = vec![GpuRoom { share: 1.0, free_bytes: Some(10 << 30) }];
        let chosen = choose(&[need(6 << 30), need(6 << 30), need(3 << 30)], 8, &mut gpus);
        assert_eq!(chosen, vec![0, 2], "the second 6 GiB trial waits: 4 GiB are left");
        assert_eq!(gpus[0].free_bytes, Some(1 << 30));
    }

    #[test]
    fn only_the_current_lease_is_extended() {
        use TrialState::*;
        assert_eq!(judge_lease(Running, Some(7), 7), LeaseVerdict::Extend);
        assert_eq!(judge_lease(Leased, Some(7), 7), LeaseVerdict::Extend);
        assert_eq!(judge_lease(Running, Some(8), 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Pending, None, 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Succeeded, Some(7), 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Cancelled, Some(7), 7), LeaseVerdict::Stop);
        assert_eq!(judge_lease(StoppedEarly, Some(7), 7), LeaseVerdict::Stop);
        assert_eq!(judge_lease(StoppedEarly, Some(8), 7), LeaseVerdict::Abandon);
    }

    #[test]
    fn finished_trials_take_no_more_rows_from_the_attempt_that_finished_them() {
        use RowAdmission::*;
        use TrialState::*;
        assert_eq!(admit_rows(Running, Some(7), 7, false), Rows);
        assert_eq!(admit_rows(Running, Some(8), 7, true), Rows, "an expired attempt's late rows are kept");
        assert_eq!(admit_rows(Pending, None, 7, false), Rows, "so are they while the trial waits for its retry");
        assert_eq!(admit_rows(Cancelled, Some(7), 7, false), Rows, "an attempt being stopped records what it finishes");
        for finished in [Succeeded, Failed, Stopped, Cancelled] {
            assert_eq!(admit_rows(finished, None, 7, false), Refused, "{finished:?}");
            assert_eq!(admit_rows(finished, None, 7, true), RowsOnly, "{finished:?}: a superseded attempt's rows");
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let almost_one = 0.999_999;
        assert_eq!(retry_not_before(1_000, 1, 0, almost_one), 1_000, "no backoff configured");
        assert!(retry_not_before(0, 1, 1_000, almost_one) < 1_000);
        assert!(retry_not_before(0, 3, 1_000, almost_one) > 3_900);
        assert!(retry_not_before(0, 40, 1_000, almost_one) <= RETRY_BACKOFF_CAP.as_millis() as i64);
    }

    #[test]
    fn only_gpus_with_room_count_and_offer_their_memory() {
        let room = |share, free_bytes| GpuRoom { share, free_bytes };
        let gpus = [room(0.0, Some(40 << 30)), room(0.5, Some(8 << 30)), room(1.0, Some(6 << 30)), room(1.0, None)];
        assert_eq!(gpus_with_room(&gpus), 3);
        assert_eq!(most_free_bytes(&gpus), Some(8 << 30), "a full GPU's free memory is not on offer");
        assert_eq!(most_free_bytes(&[GpuRoom::FREE]), None, "the driver did not say");
        assert_eq!(gpus_with_room(&[]), 0);
        assert_eq!(most_free_bytes(&[]), None);
    }

    #[test]
    fn more_candidates_are_read_than_there_are_slots() {
        assert_eq!(candidates_to_read(0), 0);
        assert_eq!(candidates_to_read(2), 2 * CANDIDATES_PER_SLOT as usize);
        assert_eq!(candidates_to_read(u32::MAX), u32::MAX as usize, "saturates");
    }

    #[test]
    fn only_failures_the_node_may_cause_lengthen_its_streak() {
        assert_eq!(streak_after(Exit::Failure), Streak::Lengthen);
        assert_eq!(streak_after(Exit::OutOfMemory), Streak::Lengthen);
        assert_eq!(streak_after(Exit::Success), Streak::Reset);
        for exit in [Exit::BadConfig, Exit::StoppedOnRequest, Exit::GroupOutOfMemory, Exit::GroupFailure] {
            assert_eq!(streak_after(exit), Streak::Keep, "{exit:?}");
        }
    }

    #[test]
    fn quarantine_after_n_failures_that_blame_the_node() {
        assert!(!is_quarantined(4, 5));
        assert!(is_quarantined(5, 5));
        assert!(!is_quarantined(100, 0), "0 turns it off");
    }

    #[test]
    fn only_failures_of_trials_that_run_elsewhere_blame_the_node() {
        let e = |trial_ok, trial_failed, sweep_ok| FailureEvidence {
            trial_succeeded_elsewhere: trial_ok,
            trial_failed_elsewhere: trial_failed,
            sweep_succeeded_elsewhere: sweep_ok,
        };
        assert!(!blames_node(e(false, false, false)), "a sweep that succeeded nowhere blames nobody");
        assert!(!blames_node(e(false, true, false)), "a trial that fails everywhere is the trial's fault");
        assert!(blames_node(e(true, false, true)), "the same trial succeeded on another node");
        assert!(blames_node(e(true, true, true)), "a flaky trial that succeeded elsewhere still counts");
        assert!(blames_node(e(false, false, true)), "its sweep runs elsewhere and this trial failed only here");
        assert!(!blames_node(e(false, true, true)), "this trial failed on another node too: its parameters");
    }

    #[test]
    fn a_sweep_pauses_after_failures_on_distinct_agents_or_its_only_one() {
        assert!(!should_pause(4, 2, 2, 5), "too few failures");
        assert!(should_pause(5, 2, 2, 5));
        assert!(!should_pause(5, 1, 2, 5), "one agent failing everything may be the broken node");
        assert!(should_pause(5, 1, 1, 5), "with one agent, distinct agents cannot be asked for");
        assert!(should_pause(5, 1, 0, 5), "the only agent is gone: its failures still count");
        assert!(should_pause(5, 2, 10, 5), "two agents suffice however many there are");
        assert!(!should_pause(50, 5, 5, 0), "0 turns it off");
    }

    #[test]
    fn stalls_name_why_nobody_runs_the_pending_trials() {
        assert_eq!(stall(0, 0, &[]), None, "nothing pending");
        assert_eq!(stall(3, 0, &[]), Some(Stall::NoAgents));
        assert_eq!(stall(3, 0, &[(0, true), (1, true)]), Some(Stall::AllQuarantined { quarantined: 2 }));
        assert_eq!(stall(3, 0, &[(0, true), (0, false)]), None);
        assert_eq!(stall(3, 4, &[(8, true), (2, false)]), Some(Stall::TooFewGpus { needed: 4, most: 2 }));
        assert_eq!(stall(3, 2, &[(2, false)]), None);
        assert!(Stall::AllQuarantined { quarantined: 2 }.to_string().contains("--unquarantine"));
    }

    #[test]
    fn expiry_is_inclusive_of_the_deadline() {
        assert!(!is_expired(1_000, 999));
        assert!(is_expired(1_000, 1_000));
    }
}
