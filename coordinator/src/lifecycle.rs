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
//!   pending | leased | running ──── cancel ────▶ cancelled
//! ```
//! The attempt number grows by one at every lease, so a retry after a lost lease runs as
//! attempt + 1 and anything still reported under the old lease is refused.

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
}

impl TrialState {
    pub const ALL: [TrialState; 7] = [
        TrialState::Pending,
        TrialState::Leased,
        TrialState::Running,
        TrialState::Succeeded,
        TrialState::Failed,
        TrialState::Cancelled,
        TrialState::Stopped,
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
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, TrialState::Succeeded | TrialState::Failed | TrialState::Cancelled | TrialState::Stopped)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Leased,
    Started,
    Exited(Exit),
    /// Expired, or handed back by a draining agent.
    LeaseLost,
    Cancel,
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
        (Leased | Running, Event::LeaseLost) => {
            counters.lost += 1;
            if counters.lost > policy.max_lost {
                Failed
            } else {
                Pending
            }
        }
        (Pending | Leased | Running, Event::Cancel) => Cancelled,
        (state, event) => return Err(InvalidTransition { state, event }),
    };
    Ok((next, counters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrialState::*;

    const POLICY: Policy = Policy { max_attempts: 2, max_lost: 1, retry_backoff_ms: 0 };

    fn run(events: &[Event]) -> Result<(TrialState, Counters), InvalidTransition> {
        events.iter().try_fold((Pending, Counters::default()), |(s, c), e| transition(s, c, *e, POLICY))
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
    fn cancel_and_stop() {
        assert_eq!(run(&[Event::Cancel]).unwrap().0, Cancelled);
        assert_eq!(run(&[Event::Leased, Event::Started, Event::Cancel]).unwrap().0, Cancelled);
        assert_eq!(run(&[Event::Leased, Event::Exited(Exit::StoppedOnRequest)]).unwrap().0, Stopped);
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
    fn states_round_trip_through_text() {
        for s in TrialState::ALL {
            assert_eq!(s.as_str().parse::<TrialState>().unwrap(), s);
        }
    }
}
