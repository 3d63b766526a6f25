//! What a running launch does about each event, decided without a process: a coordinator command,
//! a fused member the runner dropped, the process's end. `supervise.rs` carries the decisions out;
//! here they are plain functions of the leases still in the process.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use sweep_proto::v1::CompleteRequest;

/// What the coordinator asks of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Cancelled or early-stopped: terminate gracefully, then report.
    Stop,
    /// The lease is gone: kill at once and report nothing.
    Abandon,
    /// The agent is shutting down: SIGTERM (the trial checkpoints), wait the grace period, then
    /// hand the lease back so the next attempt starts at once and resumes from the checkpoint.
    Drain,
}

/// What the supervisor does about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the command names a lease that already left the launch.
    Ignore,
    /// Complete this fused member as stopped on request; the others train on.
    StopMember(i64),
    /// Forget this fused member, whose lease is lost (the coordinator retries it); the others
    /// train on.
    LoseMember(i64),
    /// Kill the process at once and complete nothing: the launch's lease is gone.
    Abandon,
    /// SIGTERM the process (SIGKILL after the grace period), then complete the leases left.
    Terminate(Ending),
}

/// Why the process ended, as the completions of its leases tell the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// On its own.
    Exited,
    /// The coordinator stopped it (cancelled or early-stopped).
    Stopped,
    /// The agent is draining: the leases go back and their trials resume elsewhere.
    Drained,
    /// It reported the last epoch its lease allows and did not exit by itself, so the agent
    /// stopped it: the attempt ended well.
    ReachedBudget,
}

/// The leases of one launch still training in its process; completed or abandoned members leave.
#[derive(Debug, Clone)]
pub struct LaunchState {
    live: Vec<i64>,
    /// Launched as a fused group: its exit then is every remaining member's alike.
    group: bool,
}

impl LaunchState {
    pub fn new(leases: Vec<i64>) -> LaunchState {
        LaunchState { group: leases.len() > 1, live: leases }
    }

    pub fn live(&self) -> &[i64] {
        &self.live
    }

    pub fn contains(&self, lease_id: i64) -> bool {
        self.live.contains(&lease_id)
    }

    pub fn leave(&mut self, lease_id: i64) {
        self.live.retain(|l| *l != lease_id);
    }

    /// What a command does; None is the agent closing the channel, which abandons the launch.
    /// A fused group reacts member by member while another member still trains; a drain always
    /// ends the whole process.
    pub fn on_control(&self, cmd: Option<(i64, Control)>) -> Action {
        match cmd {
            None => Action::Abandon,
            Some((_, Control::Drain)) => Action::Terminate(Ending::Drained),
            Some((lease_id, _)) if !self.contains(lease_id) => Action::Ignore,
            Some((lease_id, Control::Stop)) if self.live.len() > 1 => Action::StopMember(lease_id),
            Some((lease_id, Control::Abandon)) if self.live.len() > 1 => Action::LoseMember(lease_id),
            Some((_, Control::Stop)) => Action::Terminate(Ending::Stopped),
            Some((_, Control::Abandon)) => Action::Abandon,
        }
    }

    /// The completion of each lease still in the process once it ended. Which member caused a
    /// group's failure is unknown, so the coordinator is told the failure is the group's.
    pub fn completions(
        &self,
        status: &std::io::Result<ExitStatus>,
        stderr_tail: &str,
        ending: Ending,
    ) -> Vec<CompleteRequest> {
        let (exit_code, signal) = exit_of(status);
        let launch_error = status.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
        let completion = |lease_id| CompleteRequest {
            lease_id,
            exit_code,
            signal,
            stderr_tail: stderr_tail.to_string(),
            launch_error: launch_error.clone(),
            stopped_by_request: ending == Ending::Stopped,
            released: ending == Ending::Drained,
            whole_group: self.group,
            // The reporter signs it with the session that holds the lease.
            session_secret: String::new(),
            // Waiting for a started process failed: nothing says a retry would.
            launch_error_permanent: false,
            // The process ran.
            unstarted: false,
            reached_budget: ending == Ending::ReachedBudget,
            // The supervisor sets it once the checkpoint is kept (PBT).
            kept_checkpoint: false,
        };
        self.live.iter().copied().map(completion).collect()
    }
}

/// The exit code, or the signal that killed the process; neither when waiting for it failed.
pub fn exit_of(status: &std::io::Result<ExitStatus>) -> (Option<i32>, Option<i32>) {
    match status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    }
}

/// The completion of a fused member the coordinator stopped while the others train on.
pub fn member_stopped(lease_id: i64) -> CompleteRequest {
    CompleteRequest { lease_id, stopped_by_request: true, ..Default::default() }
}

/// The completion of a fused member the runner dropped (it diverged): a failure of its own, with
/// the runner's reason.
pub fn member_dropped(lease_id: i64, why: String) -> CompleteRequest {
    CompleteRequest { lease_id, exit_code: Some(1), stderr_tail: why, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_alone_obeys_each_command_as_a_whole() {
        let alone = LaunchState::new(vec![7]);
        assert_eq!(alone.on_control(Some((7, Control::Stop))), Action::Terminate(Ending::Stopped));
        assert_eq!(alone.on_control(Some((7, Control::Abandon))), Action::Abandon);
        assert_eq!(alone.on_control(Some((7, Control::Drain))), Action::Terminate(Ending::Drained));
        assert_eq!(alone.on_control(None), Action::Abandon, "a closed channel abandons");
    }

    #[test]
    fn a_fused_member_is_stopped_or_lost_alone_while_another_trains() {
        let group = LaunchState::new(vec![1, 2, 3]);
        assert_eq!(group.on_control(Some((2, Control::Stop))), Action::StopMember(2));
        assert_eq!(group.on_control(Some((2, Control::Abandon))), Action::LoseMember(2));
        assert_eq!(group.on_control(Some((2, Control::Drain))), Action::Terminate(Ending::Drained));
        assert_eq!(group.on_control(None), Action::Abandon);
    }

    #[test]
    fn the_last_member_of_a_group_ends_the_process() {
        let mut group = LaunchState::new(vec![1, 2]);
        group.leave(1);
        assert_eq!(group.live(), &[2]);
        assert_eq!(group.on_control(Some((2, Control::Stop))), Action::Terminate(Ending::Stopped));
        assert_eq!(group.on_control(Some((2, Control::Abandon))), Action::Abandon);
    }

    #[test]
    fn commands_for_leases_that_left_are_ignored_but_a_drain_is_not() {
        let mut group = LaunchState::new(vec![1, 2, 3]);
        group.leave(2);
        assert!(!group.contains(2));
        assert_eq!(group.on_control(Some((2, Control::Stop))), Action::Ignore);
        assert_eq!(group.on_control(Some((2, Control::Abandon))), Action::Ignore);
        assert_eq!(group.on_control(Some((99, Control::Stop))), Action::Ignore);
        assert_eq!(group.on_control(Some((99, Control::Drain))), Action::Terminate(Ending::Drained));
    }

    #[test]
    fn completions_carry_the_exit_and_why_the_process_ended() {
        let alone = LaunchState::new(vec![7]);
        let exited = alone.completions(&Ok(ExitStatus::from_raw(3 << 8)), "boom", Ending::Exited);
        let expected =
            CompleteRequest { lease_id: 7, exit_code: Some(3), stderr_tail: "boom".into(), ..Default::default() };
        assert_eq!(exited, vec![expected]);

        let killed = alone.completions(&Ok(ExitStatus::from_raw(libc::SIGKILL)), "", Ending::Stopped);
        assert_eq!((killed[0].exit_code, killed[0].signal), (None, Some(libc::SIGKILL)));
        assert!(killed[0].stopped_by_request && !killed[0].released);

        let drained = alone.completions(&Ok(ExitStatus::from_raw(143 << 8)), "", Ending::Drained);
        assert!(drained[0].released && !drained[0].stopped_by_request);

        let lost = alone.completions(&Err(std::io::Error::other("wait failed")), "", Ending::Exited);
        assert_eq!((lost[0].exit_code, lost[0].signal, lost[0].launch_error.as_str()), (None, None, "wait failed"));
    }

    #[test]
    fn a_group_completes_every_member_left_as_the_group() {
        let mut group = LaunchState::new(vec![1, 2, 3]);
        group.leave(2);
        let done = group.completions(&Ok(ExitStatus::from_raw(1 << 8)), "", Ending::Exited);
        assert_eq!(done.iter().map(|r| r.lease_id).collect::<Vec<_>>(), vec![1, 3]);
        assert!(done.iter().all(|r| r.whole_group && r.exit_code == Some(1)));
        assert!(
            !LaunchState::new(vec![1]).completions(&Ok(ExitStatus::from_raw(0)), "", Ending::Exited)[0].whole_group
        );
    }

    #[test]
    fn members_completed_alone_say_why() {
        assert_eq!(member_stopped(4), CompleteRequest { lease_id: 4, stopped_by_request: true, ..Default::default() });
        let dropped = member_dropped(5, "loss is NaN".into());
        assert_eq!((dropped.exit_code, dropped.stderr_tail.as_str()), (Some(1), "loss is NaN"));
        assert!(!dropped.whole_group && !dropped.stopped_by_request);
    }
}
