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

/// A synthetic sparsity sweep (workload `sparsity`, model `lenet300_100`): [`PRUNERS`] ×
/// [`TARGETS`] × [`SPARSITY_SEEDS`], quantized, and one dense trial of seed 0 (which keeps the
/// default `final_sparsity` 0.9 in its parameters, as the workload records it).
pub const PRUNERS: [(&str, &str); 2] = [("magnitude", "gradual"), ("random", "one_shot")];
pub const TARGETS: [f64; 3] = [0.5, 0.9, 0.99];
pub const SPARSITY_SEEDS: [i64; 2] = [0, 1];
pub const DENSE_ACC: f64 = 0.98;

/// Final test accuracy: the dense 0.98, less 1 point (magnitude) or 5 points (random) per decade
/// of pruning, seeds 0.002 below and above.
pub fn sparsity_acc(method: &str, target: f64, seed: i64) -> f64 {
    let decades = -(1.0 - target).log10();
    let per_decade = match method {
        "dense" => 0.0,
        "magnitude" => 0.01,
        _ => 0.05,
    };
    DENSE_ACC - per_decade * decades + 0.004 * (seed as f64 - 0.5)
}

/// Measured sparsity of layer0, layer1, layer2: global magnitude pruning takes more of the wide
/// first layer and less of the last; random pruning takes the same share of each.
pub fn layer_sparsity(method: &str, target: f64) -> [f64; 3] {
    match method {
        "magnitude" => [target + (1.0 - target) * 0.5, target, target * 0.5],
        "dense" => [0.0; 3],
        _ => [target; 3],
    }
}

pub fn sparsity_trials() -> Vec<TrialRow> {
    let row = |id: String, method: &str, pruning: &str, target: f64, seed: i64| {
        let mut t = trials().remove(0);
        t.sweep = "sp".into();
        t.trial_id = id;
        t.workload = "sparsity".into();
        t.attempts = 1;
        t.params = Map::new();
        for (k, v) in [
            ("method", json!(method)),
            ("pruning", json!(pruning)),
            ("scope", json!("global")),
            ("final_sparsity", json!(target)),
            ("model", json!("lenet300_100")),
            ("quantize", json!(true)),
            ("seed", json!(seed)),
        ] {
            t.params.insert(k.into(), v);
        }
        t.finals = BTreeMap::new();
        t
    };
    let mut out = vec![row("sp-dense-s0".into(), "dense", "one_shot", 0.9, 0)];
    for (method, pruning) in PRUNERS {
        for target in TARGETS {
            for seed in SPARSITY_SEEDS {
                out.push(row(format!("sp-{method}-{target}-s{seed}"), method, pruning, target, seed));
            }
        }
    }
    out
}

/// Two epochs of metric rows per trial; the last carries the values above. The first trial's
/// first attempt also reported a last epoch, superseded by its second attempt.
pub fn sparsity_metrics(trials: &[TrialRow]) -> Vec<MetricRow> {
    let mut out = Vec::new();
    for t in trials {
        let method = t.params["method"].as_str().unwrap();
        let target = if method == "dense" { 0.0 } else { t.params["final_sparsity"].as_f64().unwrap() };
        let acc = sparsity_acc(method, target, t.params["seed"].as_i64().unwrap());
        let layers = layer_sparsity(method, target);
        let last = [
            ("test_acc", acc),
            ("test_acc_int8", acc - 0.01),
            ("sparsity", target),
            ("sparsity/layer0", layers[0]),
            ("sparsity/layer1", layers[1]),
            ("sparsity/layer2", layers[2]),
            ("nonzeros", 266_200.0 * (1.0 - target)),
        ];
        let mut row = |attempt: i32, epoch: i32, metric: &str, value: f64, superseded: bool| {
            out.push(MetricRow {
                sweep: t.sweep.clone(),
                trial_id: t.trial_id.clone(),
                attempt,
                epoch,
                step: epoch as i64 * 100,
                metric: metric.into(),
                value,
                recorded_at_us: 1_000_000 + epoch as i64,
                superseded,
            });
        };
        row(1, 1, "test_acc", 0.5, false);
        row(1, 1, "sparsity", 0.0, false);
        let mut attempt = 1;
        if t.trial_id == trials[1].trial_id {
            row(1, 2, "test_acc", 0.1, true);
            attempt = 2;
        }
        for (metric, value) in last {
            row(attempt, 2, metric, value, false);
        }
    }
    out
}

/// Writes `tensors` (name, shape, values) as a safetensors file at `path`, as the workload saves
/// its checkpoints.
pub fn write_safetensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    use safetensors::tensor::TensorView;
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), b)| {
        (name.clone(), TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap())
    });
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// A LeNet-300-100 checkpoint on 28 × 28 inputs under `root` for trial `trial` of sweep `sweep`:
/// first-layer units that look at a blob with stripes, each layer magnitude-pruned to `sparsity`
/// by its mask (the weights themselves are left as trained, the mask zeroes them).
pub fn write_lenet_checkpoint(root: &std::path::Path, sweep: &str, trial: &str, sparsity: f64) {
    let dir = root.join(sweep).join(trial).join("latest");
    std::fs::create_dir_all(&dir).unwrap();
    let layer0: Vec<f32> = (0..300 * 784)
        .map(|i| {
            let (u, p) = (i / 784, i % 784);
            let (y, x) = ((p / 28) as f32, (p % 28) as f32);
            let (cy, cx) = (8.0 + (u % 7) as f32 * 2.0, 8.0 + (u / 7 % 7) as f32 * 2.0);
            let angle = u as f32 * 0.7;
            let wave = (0.6 * (x * angle.cos() + y * angle.sin()) + u as f32).sin();
            wave * (-((x - cx).powi(2) + (y - cy).powi(2)) / 50.0).exp() * 0.1
        })
        .collect();
    let dense = |n: usize, k: f32| (0..n).map(|i| ((i as f32) * k).sin() * 0.1).collect::<Vec<f32>>();
    let layers = [
        ("layer0", vec![300, 784], layer0),
        ("layer1", vec![100, 300], dense(100 * 300, 0.37)),
        ("layer2", vec![10, 100], dense(10 * 100, 0.53)),
    ];
    write_pruned_checkpoint(&dir, layers, sparsity);
}

/// A cnn5 checkpoint (k = 16, RGB inputs) under `root`, each layer magnitude-pruned to `sparsity`.
pub fn write_cnn5_checkpoint(root: &std::path::Path, sweep: &str, trial: &str, sparsity: f64) {
    let dir = root.join(sweep).join(trial).join("latest");
    std::fs::create_dir_all(&dir).unwrap();
    let shapes = [
        ("conv0", vec![16, 3, 3, 3]),
        ("conv1", vec![32, 16, 3, 3]),
        ("conv2", vec![64, 32, 3, 3]),
        ("conv3", vec![128, 64, 3, 3]),
        ("fc", vec![10, 128]),
    ];
    let layers = shapes.map(|(name, shape)| {
        let n: usize = shape.iter().product();
        (name, shape, (0..n).map(|i| ((i * i) as f32 * 0.013).sin() * 0.1).collect())
    });
    write_pruned_checkpoint(&dir, layers, sparsity);
}

/// Writes `layers` (name, weight shape, weights) with their biases and masks into `dir`, each
/// weight's mask keeping its largest `1 - sparsity` by magnitude. The weights stay as trained:
/// the mask zeroes them.
fn write_pruned_checkpoint<const N: usize>(
    dir: &std::path::Path,
    layers: [(&str, Vec<usize>, Vec<f32>); N],
    sparsity: f64,
) {
    let mut tensors = Vec::new();
    for (name, shape, values) in layers {
        let mut magnitudes: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        magnitudes.sort_by(f32::total_cmp);
        let cut = (sparsity * values.len() as f64) as usize;
        let threshold = if cut == 0 { -1.0 } else { magnitudes[cut - 1] };
        let mask: Vec<f32> = values.iter().map(|v| if v.abs() > threshold { 1.0 } else { 0.0 }).collect();
        let units = shape[0];
        tensors.push((format!("{name}.weight"), shape.clone(), values));
        tensors.push((format!("mask.{name}.weight"), shape, mask));
        tensors.push((format!("{name}.bias"), vec![units], vec![0.01; units]));
        tensors.push((format!("mask.{name}.bias"), vec![units], vec![1.0; units]));
    }
    write_safetensors(&dir.join("model.safetensors"), &tensors);
}
