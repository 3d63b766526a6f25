//! The life of a trial: its states, and the one function that moves it between them.
//!
//! ```text
//!              lease               start
//!   pending ─────────▶ leased ──────────▶ running ───── exit 0 ─────────────▶ succeeded
//!    ▲  ▲                │                   │
//!    │  └── lease lost ──┴──── lease lost ───┤  (agent gone or lease expired: counts against
//!    │                                       │   retry.max_lost, not the user's attempts)
//!    └──── failure, attempts left ───────────┤
//!                                            ├── failure, none left, or bad config ──▶ failed
//!                                            └── stopped on request ───────────────▶ stopped
//!   pending | leased | running | paused ──── cancel ────▶ cancelled
//!   leased | running ──── below the cut at a rung (`[schedule]`, stop-only) ────▶ stopped_early
//!   leased | running ──── trained to its budget (a promoting `[schedule]`) ──┬─ went on ──▶ pending
//!                                                                             └─ below ────▶ paused
//!   paused ──── later values put it inside the cut ────▶ pending (promoted; resumes from its checkpoint)
//!   paused ──── nothing left in the sweep that could promote it ────▶ stopped_early
//!   failed | cancelled ──── retry (`sweep retry`) ────▶ pending, with a fresh attempt budget
//! ```
//! The attempt number grows by one at every lease, so a retry after a lost lease runs as
//! attempt + 1 and anything still reported under the old lease is refused. What an agent reports at
//! the end of an attempt (`Completion`) is judged here too: which `Exit` it was.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrialState {
    Pending,
    Leased,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Stopped,
    /// Stopped by the sweep's schedule: its value at a rung was outside the cut.
    StoppedEarly,
    /// Trained to a rung of a promoting schedule and outside the cut there: holds its checkpoint
    /// and no slot until it is promoted, or stopped early when nothing could promote it any more.
    Paused,
}

impl TrialState {
    pub const ALL: [TrialState; 9] = [
        TrialState::Pending,
        TrialState::Leased,
        TrialState::Running,
        TrialState::Succeeded,
        TrialState::Failed,
        TrialState::Cancelled,
        TrialState::Stopped,
        TrialState::StoppedEarly,
        TrialState::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "pending",
            TrialState::Leased => "leased",
            TrialState::Running => "running",
            TrialState::Succeeded => "succeeded",
            TrialState::Failed => "failed",
            TrialState::Cancelled => "cancelled",
            TrialState::Stopped => "stopped",
            TrialState::StoppedEarly => "stopped_early",
            TrialState::Paused => "paused",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TrialState::Succeeded
                | TrialState::Failed
                | TrialState::Cancelled
                | TrialState::Stopped
                | TrialState::StoppedEarly
        )
    }

    /// Holds a lease: an agent is (or should be) running it.
    pub fn is_leased(self) -> bool {
        matches!(self, TrialState::Leased | TrialState::Running)
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrialState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TrialState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown trial state `{s}`"))
    }
}

/// How many times a trial was leased, failed in its own code, or lost to the infrastructure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub attempt: u32,
    pub user_failures: u32,
    pub lost: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_attempts: u32,
    pub max_lost: u32,
    /// Base of the exponential backoff before a failed trial may run again.
    pub retry_backoff_ms: u32,
}

/// How an attempt ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Non-zero exit, a signal, or a process that could not start.
    Failure,
    /// CUDA ran out of memory: retried under the same policy, recorded apart so the cause shows.
    OutOfMemory,
    /// CUDA ran out of memory in a fused group of several trials: the group's size was the
    /// coordinator's choice, not the trial's fault. Retried at once, in a group half as large,
    /// without counting against `max_attempts`; the halving ends with the trial alone, where an
    /// out-of-memory is `OutOfMemory`.
    GroupOutOfMemory,
    /// A fused group's process failed as a whole (a crash, an error, a bad configuration of some
    /// member): which member caused it is unknown, and the group was the coordinator's choice.
    /// Retried at once in a group half as large, without counting against `max_attempts`; the
    /// halving ends with each trial alone, where a failure is its own.
    GroupFailure,
    /// The trial said its configuration is invalid: retrying cannot help.
    BadConfig,
    /// The agent stopped it because the coordinator asked (cancel or early stop).
    StoppedOnRequest,
}

/// What PyTorch and libtorch print when a GPU runs out of memory.
pub const OUT_OF_MEMORY_MARKERS: &[&str] = &["CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory"];

/// How an attempt ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: String,
    pub launch_error: String,
    /// The program is missing or not executable: no retry can start it, so the trial fails at once.
    pub launch_error_permanent: bool,
    pub stopped_by_request: bool,
    /// Handed back by a draining agent: not a failure of the trial.
    pub released: bool,
    /// With `released`: the agent held the lease ahead of a free slot and never started the
    /// trial, so the hand-back is not a lost lease either.
    pub unstarted: bool,
    /// The exit of a fused group's process, not known to be this member's own.
    pub whole_group: bool,
    /// The coordinator ended the attempt itself, for this reason: the trial broke a bound that it
    /// would break again (`--max-metric-names`), so it fails without a retry.
    pub refused: Option<String>,
    /// The agent stopped the trial after it reported the last epoch of its lease's budget (a
    /// promoting schedule's rung) and went on: the attempt ended well, as an exit 0 would.
    pub reached_budget: bool,
    /// Under PBT: the agent kept the checkpoint the attempt ended with at its lease's budget.
    pub kept_checkpoint: bool,
}

impl Completion {
    /// The exit of an attempt that trained in a group of `group_size` trials (1: alone). In a
    /// group, running out of memory and a failure of the group's process are the group's, not the
    /// trial's: its size was the coordinator's choice.
    pub fn exit(&self, group_size: u32) -> Exit {
        let grouped = group_size > 1;
        match self.process_exit() {
            Exit::OutOfMemory if grouped => Exit::GroupOutOfMemory,
            Exit::Failure | Exit::BadConfig if grouped && self.whole_group => Exit::GroupFailure,
            exit => exit,
        }
    }

    /// What the trial's process said, regardless of any group. A stop the coordinator asked for
    /// explains whatever status followed it.
    fn process_exit(&self) -> Exit {
        match (self.exit_code, self.signal) {
            _ if self.refused.is_some() => Exit::BadConfig,
            _ if self.stopped_by_request => Exit::StoppedOnRequest,
            _ if self.reached_budget => Exit::Success,
            _ if !self.launch_error.is_empty() && self.launch_error_permanent => Exit::BadConfig,
            _ if !self.launch_error.is_empty() => Exit::Failure,
            (Some(0), None) => Exit::Success,
            (Some(sweep_spec::trial::EXIT_BAD_CONFIG), None) => Exit::BadConfig,
            _ if OUT_OF_MEMORY_MARKERS.iter().any(|m| self.stderr_tail.contains(m)) => Exit::OutOfMemory,
            _ => Exit::Failure,
        }
    }

    /// The event the attempt's end is for its trial: a lease handed back is lost, not failed.
    pub fn event(&self, group_size: u32) -> Event {
        if self.released && self.unstarted {
            Event::Returned
        } else if self.released {
            Event::LeaseLost
        } else {
            Event::Exited(self.exit(group_size))
        }
    }

    /// The error recorded with the attempt, or None for a success.
    pub fn error(&self) -> Option<String> {
        if self.released && self.unstarted {
            return Some("handed back unstarted by a draining agent".to_string());
        }
        if self.released {
            return Some("handed back by a draining agent".to_string());
        }
        if let Some(reason) = &self.refused {
            return Some(reason.clone());
        }
        if self.reached_budget {
            return None;
        }
        let cause = if self.launch_error.starts_with("could not start") {
            // Agents name the program themselves: "could not start `python3`: not found on PATH".
            self.launch_error.clone()
        } else if !self.launch_error.is_empty() {
            format!("could not start: {}", self.launch_error)
        } else if let Some(sig) = self.signal {
            format!("killed by signal {sig}")
        } else {
            match self.exit_code {
                Some(0) => return None,
                Some(code) => format!("exit code {code}"),
                None => "ended without an exit status".to_string(),
            }
        };
        let tail = self.stderr_tail.trim();
        Some(if tail.is_empty() { cause } else { format!("{cause}: {tail}") })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Leased,
    Started,
    Exited(Exit),
    /// Expired, or handed back by a draining agent.
    LeaseLost,
    /// Handed back by an agent that held the lease ahead of a free slot and never started it.
    Returned,
    Cancel,
    /// The sweep's schedule judged it below the cut at a rung: its agent is told to stop it. A
    /// paused trial gets it when nothing is left in its sweep that could promote it.
    StopEarly,
    /// The attempt trained to the epoch its lease said to stop after (a promoting schedule's
    /// rung) and ended well; `promoted`: its value there went on, so it queues for the next rung.
    ReachedBudget {
        promoted: bool,
    },
    /// Later values at its rung put a paused trial inside the cut.
    Promote,
    /// The user queues a finished trial again (`sweep retry`): its failures and lost leases no
    /// longer count, while the attempt number keeps growing so old attempts stay apart.
    Retry,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {state} trial cannot take event {event:?}")]
pub struct InvalidTransition {
    pub state: TrialState,
    pub event: Event,
}

/// The only place trial states change.
pub fn transition(
    state: TrialState,
    mut counters: Counters,
    event: Event,
    policy: Policy,
) -> Result<(TrialState, Counters), InvalidTransition> {
    use TrialState::*;
    let next = match (state, event) {
        (Pending, Event::Leased) => {
            counters.attempt += 1;
            Leased
        }
        (Leased, Event::Started) | (Running, Event::Started) => Running,
        (Leased | Running, Event::Exited(exit)) => match exit {
            Exit::Success => Succeeded,
            Exit::BadConfig => {
                counters.user_failures += 1;
                Failed
            }
            Exit::StoppedOnRequest => Stopped,
            Exit::GroupOutOfMemory | Exit::GroupFailure => Pending,
            Exit::Failure | Exit::OutOfMemory => {
                counters.user_failures += 1;
                if counters.user_failures >= policy.max_attempts {
                    Failed
                } else {
                    Pending
                }
            }
        },
        (Leased, Event::Returned) => Pending,
        // A trial some heartbeat said was running cannot come back unstarted: lost, as any drain.
        (Leased | Running, Event::LeaseLost) | (Running, Event::Returned) => {
            counters.lost += 1;
            if counters.lost > policy.max_lost {
                Failed
            } else {
                Pending
            }
        }
        (Pending | Leased | Running | Paused, Event::Cancel) => Cancelled,
        (Leased | Running | Paused, Event::StopEarly) => StoppedEarly,
        (Leased | Running, Event::ReachedBudget { promoted: true }) | (Paused, Event::Promote) => Pending,
        (Leased | Running, Event::ReachedBudget { promoted: false }) => Paused,
        (Failed | Cancelled, Event::Retry) => {
            counters.user_failures = 0;
            counters.lost = 0;
            Pending
        }
        (state, event) => return Err(InvalidTransition { state, event }),
    };
    Ok((next, counters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TrialState::*;

    const POLICY: Policy = Policy { max_attempts: 2, max_lost: 1, retry_backoff_ms: 0 };

    fn run(events: &[Event]) -> Result<(TrialState, Counters), InvalidTransition> {
        events.iter().try_fold((Pending, Counters::default()), |(s, c), e| transition(s, c, *e, POLICY))
    }

    #[test]
    fn a_paused_trial_resumes_when_promoted_and_ends_stopped_early_when_not() {
        let segment = [Event::Leased, Event::Started, Event::ReachedBudget { promoted: false }];
        let (s, c) = run(&segment).unwrap();
        assert_eq!((s, c.user_failures, c.lost), (Paused, 0, 0), "a pause is no failure");
        assert_eq!(run(&[&segment[..], &[Event::Promote, Event::Leased]].concat()).unwrap().0, Leased);
        assert_eq!(run(&[&segment[..], &[Event::StopEarly]].concat()).unwrap().0, StoppedEarly);
        assert_eq!(run(&[&segment[..], &[Event::Cancel]].concat()).unwrap().0, Cancelled);
        let went_on = [Event::Leased, Event::Started, Event::ReachedBudget { promoted: true }];
        assert_eq!(run(&went_on).unwrap().0, Pending, "a trial inside the cut queues for its next rung");
        assert!(run(&[&segment[..], &[Event::Leased]].concat()).is_err(), "a paused trial is not leased");
        assert!(run(&[Event::Promote]).is_err(), "only a paused trial is promoted");
    }

    #[test]
    fn a_trial_that_succeeds_first_time() {
        let (s, c) = run(&[Event::Leased, Event::Started, Event::Exited(Exit::Success)]).unwrap();
        assert_eq!(s, Succeeded);
        assert_eq!(c, Counters { attempt: 1, user_failures: 0, lost: 0 });
    }

    #[test]
    fn failures_retry_until_max_attempts() {
        let once = [Event::Leased, Event::Started, Event::Exited(Exit::Failure)];
        assert_eq!(run(&once).unwrap().0, Pending);
        let twice: Vec<Event> = once.iter().chain(once.iter()).copied().collect();
        let (s, c) = run(&twice).unwrap();
        assert_eq!(s, Failed);
        assert_eq!(c.attempt, 2);
    }

    #[test]
    fn out_of_memory_uses_the_retry_policy() {
        let once = [Event::Leased, Event::Started, Event::Exited(Exit::OutOfMemory)];
        assert_eq!(run(&once).unwrap().0, Pending);
        let twice: Vec<Event> = once.iter().chain(once.iter()).copied().collect();
        assert_eq!(run(&twice).unwrap().0, Failed);
    }

    #[test]
    fn a_group_out_of_memory_or_failed_as_a_whole_uses_no_attempt() {
        for exit in [Exit::GroupOutOfMemory, Exit::GroupFailure] {
            let group = [Event::Leased, Event::Started, Event::Exited(exit)];
            let (state, counters) = run(&[group.as_slice(), &group, &group].concat()).unwrap();
            assert_eq!((state, counters.user_failures, counters.attempt), (Pending, 0, 3), "{exit:?}");
        }
    }

    #[test]
    fn bad_config_fails_at_once() {
        assert_eq!(run(&[Event::Leased, Event::Exited(Exit::BadConfig)]).unwrap().0, Failed);
    }

    #[test]
    fn lost_leases_do_not_use_up_attempts() {
        let (s, c) =
            run(&[Event::Leased, Event::Started, Event::LeaseLost, Event::Leased, Event::Exited(Exit::Success)])
                .unwrap();
        assert_eq!(s, Succeeded);
        assert_eq!(c, Counters { attempt: 2, user_failures: 0, lost: 1 });
        let lost_twice = [Event::Leased, Event::LeaseLost, Event::Leased, Event::LeaseLost];
        assert_eq!(run(&lost_twice).unwrap().0, Failed);
    }

    #[test]
    fn a_lease_returned_unstarted_is_neither_lost_nor_failed() {
        let returned = [Event::Leased, Event::Returned, Event::Leased, Event::Returned, Event::Leased];
        let (s, c) = run(&returned).unwrap();
        assert_eq!(s, Leased);
        assert_eq!(c, Counters { attempt: 3, user_failures: 0, lost: 0 });
        let (s, c) = run(&[Event::Leased, Event::Started, Event::Returned]).unwrap();
        assert_eq!((s, c.lost), (Pending, 1), "a started trial handed back is a lost lease");
        assert!(run(&[Event::Returned]).is_err(), "a pending trial holds no lease to hand back");
        let unstarted = Completion { released: true, unstarted: true, ..Default::default() };
        assert_eq!(unstarted.event(1), Event::Returned);
        assert_eq!(unstarted.error().as_deref(), Some("handed back unstarted by a draining agent"));
        assert_eq!(Completion { released: true, ..Default::default() }.event(1), Event::LeaseLost);
    }

    #[test]
    fn cancel_and_stop() {
        assert_eq!(run(&[Event::Cancel]).unwrap().0, Cancelled);
        assert_eq!(run(&[Event::Leased, Event::Started, Event::Cancel]).unwrap().0, Cancelled);
        assert_eq!(run(&[Event::Leased, Event::Exited(Exit::StoppedOnRequest)]).unwrap().0, Stopped);
    }

    #[test]
    fn only_a_leased_trial_is_stopped_early_and_then_takes_no_retry() {
        assert_eq!(run(&[Event::Leased, Event::Started, Event::StopEarly]).unwrap().0, StoppedEarly);
        assert!(run(&[Event::StopEarly]).is_err(), "a pending trial reached no rung");
        let stopped = [Event::Leased, Event::StopEarly];
        for e in [Event::StopEarly, Event::Retry, Event::Cancel, Event::Leased] {
            let events: Vec<Event> = stopped.iter().copied().chain([e]).collect();
            assert!(run(&events).is_err(), "{e:?} after an early stop");
        }
    }

    #[test]
    fn finished_trials_take_no_more_events() {
        let done = [Event::Leased, Event::Exited(Exit::Success)];
        for e in [Event::Leased, Event::Started, Event::LeaseLost, Event::Cancel, Event::Exited(Exit::Failure)] {
            let events: Vec<Event> = done.iter().copied().chain([e]).collect();
            assert!(run(&events).is_err(), "{e:?} after success");
        }
        assert!(run(&[Event::Started]).is_err(), "a pending trial cannot start without a lease");
    }

    #[test]
    fn a_retry_gives_failed_and_cancelled_trials_a_fresh_budget() {
        let fail = [Event::Leased, Event::Started, Event::Exited(Exit::Failure)];
        let failed: Vec<Event> = fail.iter().chain(fail.iter()).copied().collect();
        let (s, c) = run(&failed).unwrap();
        assert_eq!(s, Failed);
        let (s, c) = transition(s, c, Event::Retry, POLICY).unwrap();
        assert_eq!((s, c), (Pending, Counters { attempt: 2, user_failures: 0, lost: 0 }));
        // The whole budget again: one failure leaves it pending, as for a new trial.
        let (s, c) = fail.iter().try_fold((s, c), |(s, c), e| transition(s, c, *e, POLICY)).unwrap();
        assert_eq!((s, c.attempt), (Pending, 3));

        assert_eq!(run(&[Event::Cancel, Event::Retry]).unwrap().0, Pending);
        assert!(run(&[Event::Retry]).is_err(), "a pending trial is not retried");
        assert!(run(&[Event::Leased, Event::Exited(Exit::Success), Event::Retry]).is_err(), "nor a succeeded one");
    }

    /// The size of the group an attempt trained in.
    const IN_A_GROUP: u32 = 4;
    const ALONE: u32 = 1;

    fn exited(code: i32) -> Completion {
        Completion { exit_code: Some(code), ..Completion::default() }
    }

    fn out_of_memory(marker: &str) -> Completion {
        Completion { stderr_tail: format!("RuntimeError: {marker}. Tried to allocate 2.00 GiB"), ..exited(1) }
    }

    fn whole_group(c: Completion) -> Completion {
        Completion { whole_group: true, ..c }
    }

    #[test]
    fn a_process_exit_is_judged_by_its_status_and_stderr() {
        assert_eq!(exited(0).exit(ALONE), Exit::Success);
        assert_eq!(exited(1).exit(ALONE), Exit::Failure);
        assert_eq!(exited(sweep_spec::trial::EXIT_BAD_CONFIG).exit(ALONE), Exit::BadConfig);
        for marker in OUT_OF_MEMORY_MARKERS {
            assert_eq!(out_of_memory(marker).exit(ALONE), Exit::OutOfMemory, "{marker}");
        }
        let killed = Completion { signal: Some(9), ..Completion::default() };
        assert_eq!(killed.exit(ALONE), Exit::Failure);
        assert_eq!(
            Completion { signal: Some(6), ..out_of_memory("CUDA out of memory") }.exit(ALONE),
            Exit::OutOfMemory
        );
        assert_eq!(
            Completion { signal: Some(9), ..exited(0) }.exit(ALONE),
            Exit::Failure,
            "0 and a signal is no success"
        );
        assert_eq!(Completion::default().exit(ALONE), Exit::Failure, "no status at all");
        assert_eq!(
            Completion { stderr_tail: "CUDA out of memory".into(), ..exited(0) }.exit(ALONE),
            Exit::Success,
            "a success that logged an OOM it recovered from"
        );
    }

    /// A program that is missing or not executable cannot start on any retry: the trial fails at
    /// once, and its error is the agent's, which names the program.
    #[test]
    fn a_permanent_launch_error_fails_at_once_naming_the_program() {
        let missing = Completion {
            launch_error: "could not start `pyhton3`: not found on PATH".into(),
            launch_error_permanent: true,
            ..Completion::default()
        };
        assert_eq!(missing.exit(ALONE), Exit::BadConfig);
        assert_eq!(missing.error().as_deref(), Some("could not start `pyhton3`: not found on PATH"));
        let flaky = Completion { launch_error: "no space left on device".into(), ..Completion::default() };
        assert_eq!(flaky.exit(ALONE), Exit::Failure);
        assert_eq!(flaky.error().as_deref(), Some("could not start: no space left on device"));
    }

    #[test]
    fn a_stop_or_a_launch_error_outweighs_the_status() {
        let stopped = Completion { stopped_by_request: true, launch_error: "no such file".into(), ..exited(137) };
        assert_eq!(stopped.exit(ALONE), Exit::StoppedOnRequest);
        assert_eq!(whole_group(stopped).exit(IN_A_GROUP), Exit::StoppedOnRequest);
        let not_started = Completion { launch_error: "no such file".into(), ..exited(0) };
        assert_eq!(not_started.exit(ALONE), Exit::Failure);
        assert_eq!(whole_group(not_started).exit(IN_A_GROUP), Exit::GroupFailure);
    }

    #[test]
    fn in_a_group_out_of_memory_and_a_whole_group_failure_are_the_groups() {
        assert_eq!(out_of_memory("OutOfMemoryError").exit(IN_A_GROUP), Exit::GroupOutOfMemory);
        assert_eq!(whole_group(out_of_memory("OutOfMemoryError")).exit(IN_A_GROUP), Exit::GroupOutOfMemory);
        assert_eq!(whole_group(exited(1)).exit(IN_A_GROUP), Exit::GroupFailure);
        assert_eq!(whole_group(exited(sweep_spec::trial::EXIT_BAD_CONFIG)).exit(IN_A_GROUP), Exit::GroupFailure);
        assert_eq!(exited(1).exit(IN_A_GROUP), Exit::Failure, "a member that failed on its own");
        assert_eq!(whole_group(exited(0)).exit(IN_A_GROUP), Exit::Success);
        assert_eq!(whole_group(exited(1)).exit(ALONE), Exit::Failure, "alone, the group's exit is the trial's");
    }

    #[test]
    fn a_lease_handed_back_is_lost_not_failed() {
        let released = Completion { released: true, ..exited(143) };
        assert_eq!(released.event(ALONE), Event::LeaseLost);
        assert_eq!(released.error().as_deref(), Some("handed back by a draining agent"));
        assert_eq!(whole_group(exited(1)).event(IN_A_GROUP), Event::Exited(Exit::GroupFailure));
    }

    #[test]
    fn the_recorded_error_names_the_cause_and_the_stderr_tail() {
        assert_eq!(exited(0).error(), None);
        assert_eq!(exited(2).error().as_deref(), Some("exit code 2"));
        let tail = Completion { stderr_tail: "  boom\n".into(), ..exited(2) };
        assert_eq!(tail.error().as_deref(), Some("exit code 2: boom"));
        let killed = Completion { signal: Some(9), ..Completion::default() };
        assert_eq!(killed.error().as_deref(), Some("killed by signal 9"));
        let not_started = Completion { launch_error: "no such file".into(), signal: Some(9), ..exited(1) };
        assert_eq!(not_started.error().as_deref(), Some("could not start: no such file"));
        assert_eq!(Completion::default().error().as_deref(), Some("ended without an exit status"));
    }

    proptest! {
        #[test]
        fn group_exits_come_only_from_groups_and_never_from_a_success_or_a_stop(
            code in proptest::option::of(-1i32..256),
            signal in proptest::option::of(1i32..32),
            oom in any::<bool>(),
            launch_failed in any::<bool>(),
            stopped_by_request in any::<bool>(),
            reached_budget in any::<bool>(),
            whole in any::<bool>(),
            group_size in 0u32..16,
        ) {
            let c = Completion {
                exit_code: code,
                signal,
                stderr_tail: if oom { OUT_OF_MEMORY_MARKERS[0].into() } else { String::new() },
                launch_error: if launch_failed { "no such file".into() } else { String::new() },
                launch_error_permanent: false,
                stopped_by_request,
                released: false,
                unstarted: false,
                whole_group: whole,
                refused: None,
                reached_budget,
                kept_checkpoint: false,
            };
            let (alone, grouped) = (c.exit(ALONE), c.exit(group_size));
            prop_assert!(!matches!(alone, Exit::GroupOutOfMemory | Exit::GroupFailure));
            let expected = match alone {
                _ if group_size <= 1 => alone,
                Exit::OutOfMemory => Exit::GroupOutOfMemory,
                Exit::Failure | Exit::BadConfig if whole => Exit::GroupFailure,
                _ => alone,
            };
            prop_assert_eq!(grouped, expected);
            if matches!(alone, Exit::Success | Exit::StoppedOnRequest) {
                prop_assert_eq!(grouped, alone);
            }
        }
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in TrialState::ALL {
            assert_eq!(s.as_str().parse::<TrialState>().unwrap(), s);
        }
    }
}
