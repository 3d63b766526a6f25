//! A synthetic double-descent sweep for the tests: test error peaks at width 40, more label noise
//! lifts the whole curve, three seeds spread ±0.02 around it, and three epochs end at the final.

use serde_json::{json, Map};
use std::collections::BTreeMap;
use sweep_results::{MetricRow, TrialRow};

pub const WIDTHS: [i32; 5] = [10, 20, 40, 80, 160];
/// Test error without noise at each of [`WIDTHS`]: the peak is at 40.
const BASE: [f64; 5] = [0.3, 0.45, 0.6, 0.4, 0.3];
pub const NOISES: [f64; 2] = [0.1, 0.2];
pub const SEEDS: [i64; 3] = [0, 1, 2];
pub const EPOCHS: i32 = 3;

/// Final test error of one trial.
pub fn final_error(width_index: usize, noise: f64, seed: i64) -> f64 {
    BASE[width_index] + noise * 0.5 + (seed as f64 - 1.0) * 0.02
}

/// 30 succeeded trials of workload `mlp`; the first one needed a second attempt.
pub fn trials() -> Vec<TrialRow> {
    let mut out = Vec::new();
    for (wi, width) in WIDTHS.iter().enumerate() {
        for noise in NOISES {
            for seed in SEEDS {
                let mut params = Map::new();
                params.insert("width".into(), json!(width));
                params.insert("label_noise".into(), json!(noise));
                params.insert("seed".into(), json!(seed));
                params.insert("n".into(), json!(200));
                let error = final_error(wi, noise, seed);
                out.push(TrialRow {
                    sweep: "synthetic-dd".into(),
                    trial_id: format!("w{width}-n{noise}-s{seed}"),
                    workload: "mlp".into(),
                    status: "succeeded".into(),
                    attempts: if out.is_empty() { 2 } else { 1 },
                    agent: Some("local-0".into()),
                    started_at_us: Some(1_000_000),
                    finished_at_us: Some(2_000_000),
                    duration_s: Some(1.0),
                    params,
                    finals: BTreeMap::from([("test_error".to_string(), error), ("train_error".to_string(), 0.0)]),
                    last_error: None,
                    exit_code: None,
                    version: 0,
                    rung: None,
                    epochs_budget: None,
                    parent_trial_id: None,
                    copied_epoch: None,
                    generation: 0,
                });
            }
        }
    }
    out
}

/// Per-epoch `test_error` rows for `trials`: epoch e is `final + (EPOCHS - e) * 0.05`.
pub fn metrics(trials: &[TrialRow]) -> Vec<MetricRow> {
    let mut out = Vec::new();
    for t in trials {
        for epoch in 1..=EPOCHS {
            out.push(MetricRow {
                sweep: t.sweep.clone(),
                trial_id: t.trial_id.clone(),
                attempt: t.attempts,
                epoch,
                step: epoch as i64 * 10,
                metric: "test_error".into(),
                value: t.finals["test_error"] + (EPOCHS - epoch) as f64 * 0.05,
                recorded_at_us: 1_000_000 + epoch as i64,
                superseded: false,
            });
        }
    }
    out
}
