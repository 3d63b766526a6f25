//! Heartbeats: every lease the agent holds goes to the coordinator with whether its process runs,
//! which keeps the lease; the answer's stop and abandon commands go to each lease's supervisor.
//! A lease stays in the beats until the coordinator has its completion, not only while it runs.

use crate::client::Client;
use crate::launch_state::Control;
use crate::session::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use sweep_proto::v1::{self as pb, LeaseAction};
use tokio::sync::{mpsc, watch, Notify};

/// A lease this agent is running: how to reach its supervisor, and whether its process started.
struct Active {
    /// The launch's supervisor; the members of a fused group share it.
    control: mpsc::Sender<(i64, Control)>,
    started: watch::Receiver<bool>,
}

/// The leases this agent holds, shared by the lease loop, the launches' completions and the
/// heartbeats. The lock is held only for short sections, never across an `.await`.
#[derive(Clone, Default)]
pub struct ActiveLeases(Arc<Mutex<HashMap<i64, Active>>>);

impl ActiveLeases {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Active>> {
        self.0.lock().expect("active map")
    }

    /// Adds the leases of one launch, all reached through its one supervisor.
    pub fn insert(&self, leases: &[i64], control: &mpsc::Sender<(i64, Control)>, started: &watch::Receiver<bool>) {
        let mut map = self.lock();
        for &lease_id in leases {
            map.insert(lease_id, Active { control: control.clone(), started: started.clone() });
        }
    }

    pub fn remove(&self, lease_id: i64) {
        self.lock().remove(&lease_id);
    }

    /// Asks every lease's supervisor to drain: those of leases held ahead first, so that a slot
    /// a drained trial frees is never taken by a held lease that has yet to hear of the drain
    /// (the runtime has several threads, and a drained trial may end before this loop does).
    pub fn drain_all(&self) {
        let map = self.lock();
        let mut leases: Vec<(&i64, &Active)> = map.iter().collect();
        leases.sort_by_key(|(_, a)| *a.started.borrow());
        for (lease_id, a) in leases {
            let _ = a.control.try_send((*lease_id, Control::Drain));
        }
    }

    /// What a heartbeat says of each lease.
    fn states(&self) -> Vec<pb::LeaseState> {
        self.lock().iter().map(|(id, a)| pb::LeaseState { lease_id: *id, running: *a.started.borrow() }).collect()
    }

    /// Passes the coordinator's stop and abandon commands on to the supervisors of the leases they
    /// name; commands for leases this agent no longer holds are dropped.
    fn obey(&self, commands: Vec<pb::LeaseCommand>) {
        let map = self.lock();
        for cmd in commands {
            let Some(control) = control_for(cmd.action) else { continue };
            if let Some(a) = map.get(&cmd.lease_id) {
                tracing::info!(lease = cmd.lease_id, ?control, "coordinator command");
                let _ = a.control.try_send((cmd.lease_id, control));
            }
        }
    }
}

/// The command a lease's supervisor gets for the coordinator's action; None: carry on.
fn control_for(action: i32) -> Option<Control> {
    match LeaseAction::try_from(action) {
        Ok(LeaseAction::Stop) => Some(Control::Stop),
        Ok(LeaseAction::Abandon) => Some(Control::Abandon),
        Ok(LeaseAction::Continue | LeaseAction::Unspecified) | Err(_) => None,
    }
}

/// Heartbeats every `every`, and soon after `wake` (a trial started) so `sweep status` shows it
/// running.
pub async fn beat_forever(client: Client, session: Session, active: ActiveLeases, every: Duration, wake: Arc<Notify>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {
                // Give the process a moment to start, so the beat can say it runs.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let req = pb::HeartbeatRequest {
            agent_id: session.agent_id.clone(),
            leases: active.states(),
            session_secret: session.secret(),
        };
        match client.clone().heartbeat(req).await {
            Ok(resp) => active.obey(resp.into_inner().commands),
            Err(status) => tracing::warn!(code = ?status.code(), error = status.message(), "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(lease_id: i64, action: LeaseAction) -> pb::LeaseCommand {
        pb::LeaseCommand { lease_id, action: action as i32, deadline_ms: 0 }
    }

    fn received(rx: &mut mpsc::Receiver<(i64, Control)>) -> Vec<(i64, Control)> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn only_stop_and_abandon_reach_a_supervisor() {
        assert_eq!(control_for(LeaseAction::Stop as i32), Some(Control::Stop));
        assert_eq!(control_for(LeaseAction::Abandon as i32), Some(Control::Abandon));
        assert_eq!(control_for(LeaseAction::Continue as i32), None);
        assert_eq!(control_for(LeaseAction::Unspecified as i32), None);
        assert_eq!(control_for(42), None, "an action from a newer coordinator");
    }

    #[test]
    fn commands_go_to_the_supervisors_of_held_leases() {
        let active = ActiveLeases::default();
        let (tx, mut rx) = mpsc::channel(8);
        let (_started_tx, started) = watch::channel(false);
        active.insert(&[1, 2], &tx, &started);
        active.obey(vec![
            command(1, LeaseAction::Stop),
            command(2, LeaseAction::Continue),
            command(2, LeaseAction::Abandon),
            command(99, LeaseAction::Stop),
        ]);
        assert_eq!(received(&mut rx), vec![(1, Control::Stop), (2, Control::Abandon)]);

        active.remove(1);
        active.obey(vec![command(1, LeaseAction::Stop)]);
        assert_eq!(received(&mut rx), vec![], "a lease no longer held");
        active.drain_all();
        assert_eq!(received(&mut rx), vec![(2, Control::Drain)]);
    }

    #[test]
    fn held_leases_hear_of_a_drain_before_running_ones() {
        let active = ActiveLeases::default();
        let (tx, mut rx) = mpsc::channel(8);
        let (started_tx, started) = watch::channel(false);
        let (_held_tx, held) = watch::channel(false);
        started_tx.send(true).unwrap();
        active.insert(&[1, 3], &tx, &started);
        active.insert(&[2], &tx, &held);
        active.drain_all();
        let order: Vec<i64> = received(&mut rx).into_iter().map(|(lease, _)| lease).collect();
        assert_eq!(order[0], 2, "the held lease first: {order:?}");
        assert_eq!(order.len(), 3);
    }

    #[test]
    fn beats_say_which_leases_run() {
        let active = ActiveLeases::default();
        let (tx, _rx) = mpsc::channel(8);
        let (started_tx, started) = watch::channel(false);
        active.insert(&[5, 6], &tx, &started);
        let running = |active: &ActiveLeases| {
            let mut states: Vec<(i64, bool)> = active.states().iter().map(|s| (s.lease_id, s.running)).collect();
            states.sort();
            states
        };
        assert_eq!(running(&active), vec![(5, false), (6, false)]);
        started_tx.send(true).unwrap();
        assert_eq!(running(&active), vec![(5, true), (6, true)]);
    }
}
