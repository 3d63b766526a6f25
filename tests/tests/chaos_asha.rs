//! The chaos suite (`chaos.rs`) with its sweep under an early-stopping schedule or PBT. A binary of its
//! own, so that it runs after the other chaos runs, not beside them: it ends sooner than they do,
//! and the load they see stays what their fault timing was sized for. Its two runs take turns for
//! the same reason.

use std::sync::Mutex;
use sweep_e2e::run::{run_and_judge, ChaosConfig};

/// One run at a time: their fault timing is sized for a machine running one.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The bounded run (agent and coordinator kills, a replay burst) with the sweep under a stop-only
/// ASHA schedule: stopped trials keep their epochs up to their rung, no rung is judged twice, every
/// `stopped_early` trial has exactly one stop decision, its last, and the rest succeed whole.
#[test]
fn chaos_asha() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let report = run_and_judge(ChaosConfig::bounded().with_asha().with_env());
    assert!(report.findings.stopped_early > 0, "the schedule stopped some trials: {}", report.summary());
}

/// The same under ASHA with pause and promote: every trial trains in segments, one attempt per
/// rung, each resumed from its checkpoint on whichever agent leases it, through the same kills.
/// Nothing is lost or trained again past a checkpoint, no trial is promoted twice at a rung, and
/// none is left paused.
#[test]
fn chaos_asha_promote() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let report = run_and_judge(ChaosConfig::bounded().with_asha_promote().with_env());
    assert!(report.findings.stopped_early > 0, "the schedule stopped some trials: {}", report.summary());
    assert!(report.findings.promoted > 0, "the schedule promoted some paused trials: {}", report.summary());
}

/// TPE proposing the trials, under ASHA with pause and promote, through the same kills: the
/// coordinator proposes 26 of the 36 trials while agents and the coordinator itself die, and the
/// sweep still ends with all 36, nothing lost.
#[test]
fn chaos_tpe_asha_promote() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let report = run_and_judge(ChaosConfig::bounded().with_asha_promote().with_tpe().with_env());
    assert!(report.findings.stopped_early > 0, "the schedule stopped some trials: {}", report.summary());
}

/// PBT through the same kills: every trial trains in intervals, the worst are replaced by copies
/// of the best that resume from the checkpoints their parents' agents kept. Nothing is lost, no
/// trial is exploited twice, and every copy's lineage holds (parent, copied epoch, generation).
#[test]
fn chaos_pbt() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let report = run_and_judge(ChaosConfig::bounded().with_pbt().with_env());
    assert!(report.findings.copies > 0, "PBT replaced some trials: {}", report.summary());
}
