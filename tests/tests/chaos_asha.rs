//! The chaos suite (`chaos.rs`) with its sweep under an early-stopping schedule. A binary of its
//! own, so that it runs after the other chaos runs, not beside them: it ends sooner than they do,
//! and the load they see stays what their fault timing was sized for.

use sweep_e2e::run::{run_and_judge, ChaosConfig};

/// The bounded run (agent and coordinator kills, a replay burst) with the sweep under an ASHA
/// schedule: stopped trials keep their epochs up to their rung, no rung is judged twice, every
/// `stopped_early` trial has exactly one stop decision, its last, and the rest succeed whole.
#[test]
fn chaos_asha() {
    let report = run_and_judge(ChaosConfig::bounded().with_asha().with_env());
    assert!(report.findings.stopped_early > 0, "the schedule stopped some trials: {}", report.summary());
}
