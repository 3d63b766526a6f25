//! Leases held ahead of a free slot. A launch granted while every slot is taken waits here for
//! one, so that when a trial ends the next starts at once, without a round trip to the
//! coordinator. While it waits its leases are heartbeated (not running), and the coordinator's
//! commands are obeyed as for a running launch: a stopped or cancelled trial is completed as
//! stopped, a lost lease is forgotten, and a draining agent hands every held lease back unstarted,
//! which the coordinator does not count as a lost lease.

use crate::launch_state::{self, Action, Control, Ending, LaunchState};
use crate::reporter::Reporter;
use crate::supervise::{Delivery, Ended, Launch};
use std::sync::Arc;
use sweep_proto::v1::CompleteRequest;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// How waiting for a slot ended.
pub enum Waited {
    /// A slot is free: run what is left of the launch under its permit, which frees the slot
    /// when dropped. `ended` holds the members that left while it waited.
    Run { launch: Launch, slot: OwnedSemaphorePermit, control: mpsc::Receiver<(i64, Control)>, ended: Ended },
    /// No member is left to run; how each lease ended.
    Done(Ended),
}

/// Waits until one of `slots` is free, obeying the coordinator's commands meanwhile. Commands win
/// over a slot that frees at the same moment.
pub async fn for_slot(
    slots: Arc<Semaphore>,
    mut launch: Launch,
    mut control: mpsc::Receiver<(i64, Control)>,
    reporter: &Reporter,
) -> Waited {
    let mut state = LaunchState::new(launch.members.iter().map(|m| m.lease_id).collect());
    let mut ended: Ended = Vec::new();
    let acquire = slots.acquire_owned();
    tokio::pin!(acquire);
    loop {
        let cmd = tokio::select! {
            biased;
            cmd = control.recv() => cmd,
            slot = &mut acquire => {
                let slot = slot.expect("the agent never closes its slots");
                launch.members.retain(|m| state.contains(m.lease_id));
                return Waited::Run { launch, slot, control, ended };
            }
        };
        match state.on_control(cmd) {
            Action::Ignore => {}
            Action::StopMember(lease_id) => {
                state.leave(lease_id);
                ended.push((lease_id, complete(reporter, launch_state::member_stopped(lease_id)).await));
            }
            Action::LoseMember(lease_id) => {
                state.leave(lease_id);
                ended.push((lease_id, None));
            }
            Action::Abandon => {
                tracing::warn!(leases = ?state.live(), "lease held ahead lost before its trial started");
                ended.extend(state.live().iter().map(|l| (*l, None)));
                return Waited::Done(ended);
            }
            Action::Terminate(ending) => {
                for &lease_id in state.live() {
                    let req = match ending {
                        Ending::Drained => hand_back(lease_id),
                        Ending::Stopped | Ending::Exited | Ending::ReachedBudget => {
                            launch_state::member_stopped(lease_id)
                        }
                    };
                    ended.push((lease_id, complete(reporter, req).await));
                }
                if ending == Ending::Drained {
                    tracing::info!(leases = ?state.live(), "handing back leases held ahead, unstarted");
                }
                return Waited::Done(ended);
            }
        }
        if state.live().is_empty() {
            return Waited::Done(ended);
        }
    }
}

/// The completion of a lease held ahead that a draining agent gives back.
pub fn hand_back(lease_id: i64) -> CompleteRequest {
    CompleteRequest { lease_id, released: true, unstarted: true, ..Default::default() }
}

/// Queues one completion; its delivery keeps the lease heartbeated until the coordinator has it.
async fn complete(reporter: &Reporter, req: CompleteRequest) -> Option<Delivery> {
    reporter.complete_queued(req).await.map(Delivery::unstarted)
}
