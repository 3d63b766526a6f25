//! The workload end to end on synthetic images in the real `.npy` layout, read back through the
//! real loader: every method reaches its sparsity, masks survive a resume mid-epoch, pruned weights
//! stay zero, the three forward passes agree, and the byte counts add up.

use super::footprint::{self, int8_round_trip};
use super::inference::{self, cut_out_removed_neurons, forward};
use super::masks::{Masks, Scope};
use crate::dispatch::{checkpointed_ctx as ctx_in, run_recorded as run};
use crate::harness::StopFlag;
use crate::numeric_checks::{assert_same_runs, relative, OneThread, SAME_KERNELS};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use crate::{TrialContext, TrialError};
use serde_json::{json, Map, Value};
use std::path::Path;
use sweep_spec::workloads::SPARSITY;
use sweep_spec::{DataRef, EpochRecord, TrialSpec};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// LeNet-300-100 on 3 x 8 x 8 class patterns (192 inputs), 160 training images in batches of 32,
/// written to `data` on first use; pruned at the start of epoch 3 of 5 (from 1).
fn spec(data: &Path, changes: &[(&str, Value)]) -> TrialSpec {
    let mut params = SPARSITY.defaults();
    for (k, v) in [
        ("epochs", json!(5)),
        ("batch_size", json!(32)),
        ("optimizer", json!({"name": "adam", "lr": 3e-3})),
        ("begin", json!(0)),
        ("end", json!(2)),
        ("final_sparsity", json!(0.8)),
        ("inference_batch", json!(16)),
        ("seed", json!(5)),
    ]
    .iter()
    .chain(changes)
    {
        params.insert(k.to_string(), v.clone());
    }
    let mut spec = crate::dispatch::trial_spec(SPARSITY.name, params);
    let mut options = Map::new();
    options.insert(
        "synthetic".into(),
        json!({ "generator": "patterns", "train": 160, "test": 40, "classes": 4, "image_size": 8 }),
    );
    spec.data = Some(DataRef { format: "npy".into(), path: Some(data.display().to_string()), options });
    spec
}

fn metric(records: &[EpochRecord], name: &str) -> Vec<f64> {
    records.iter().map(|r| r.metrics[name]).collect()
}

#[test]
fn every_method_ends_at_its_sparsity_and_reports_it_per_layer() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("set");
    for (method, extra) in [
        ("magnitude", vec![]),
        ("magnitude", vec![("scope", json!("layer"))]),
        ("magnitude", vec![("pruning", json!("gradual"))]),
        ("random", vec![]),
        ("l1", vec![("l1", json!(1e-3))]),
        (
            "magnitude",
            vec![
                ("pruning", json!("iterative")),
                ("epochs", json!(2)),
                ("rounds", json!(3)),
                ("rewind_epoch", json!(1)),
            ],
        ),
        ("random", vec![("pruning", json!("iterative")), ("epochs", json!(2)), ("rounds", json!(3))]),
    ] {
        let mut changes = vec![("method", json!(method))];
        changes.extend(extra.iter().cloned());
        let (result, records) = run(&spec(&data, &changes), &TrialContext::cpu());
        result.unwrap_or_else(|e| panic!("{method} {extra:?}: {e}"));
        let last = &records.last().unwrap().metrics;
        let s = metric(&records, "sparsity");
        assert!((last["sparsity"] - 0.8).abs() < 1e-3, "{method} {extra:?}: {s:?}");
        assert!(s.windows(2).all(|w| w[1] >= w[0]), "{method} {extra:?}: pruned weights came back: {s:?}");
        let layers: Vec<f64> = ["layer0", "layer1", "layer2"].iter().map(|l| last[&format!("sparsity/{l}")]).collect();
        if method == "random" || extra.contains(&("scope", json!("layer"))) {
            assert!(layers.iter().all(|x| (x - 0.8).abs() < 0.01), "{method} {extra:?}: {layers:?}");
        } else {
            // One threshold over all layers prunes the large input layer hardest.
            assert!(layers[0] > layers[2], "{method} {extra:?}: {layers:?}");
        }
        let nonzeros = last["nonzeros"];
        let prunable = (192 * 300 + 300 * 100 + 100 * 4) as f64;
        assert!((nonzeros / prunable - 0.2).abs() < 1e-3, "{method}: {nonzeros}");
        assert!(last["model_bytes_sparse"] < last["model_bytes_dense"] * 0.5, "{last:?}");
        assert!(last["test_acc"] > 0.25, "{method} {extra:?} learned nothing: {last:?}");
        for name in ["inference_ms_dense", "inference_ms_sparse", "inference_ms_smaller"] {
            assert!(last[name] > 0.0, "{name}: {last:?}");
        }
    }
}

#[test]
fn structured_pruning_removes_whole_neurons_and_the_smaller_network_is_timed() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("set");
    let (result, records) =
        run(&spec(&data, &[("method", json!("structured")), ("final_sparsity", json!(0.5))]), &TrialContext::cpu());
    result.unwrap();
    let last = &records.last().unwrap().metrics;
    // Half of each hidden layer's neurons: half of layer0's rows, and of layer1 half the rows of the
    // remaining half of the columns (3/4 gone), and half of layer2's columns.
    assert!((last["sparsity/layer0"] - 0.5).abs() < 1e-9, "{last:?}");
    assert!((last["sparsity/layer1"] - 0.75).abs() < 1e-9, "{last:?}");
    assert!((last["sparsity/layer2"] - 0.5).abs() < 1e-9, "{last:?}");
    assert!(last["test_acc"] > 0.25, "{last:?}");
}

/// A trial stopped inside an epoch after its masks changed resumes with the very masks and
/// optimizer state: its records equal the uninterrupted run's (same kernels, same process), for
/// SGD with momentum and for Adam.
#[test]
fn a_pruned_trial_stopped_mid_epoch_resumes_to_the_same_records() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("set");
    for optimizer in [json!({"name": "sgd", "lr": 0.05, "momentum": 0.9}), json!({"name": "adam", "lr": 1e-3})] {
        let s = spec(&data, &[("pruning", json!("gradual")), ("end", json!(3)), ("optimizer", optimizer.clone())]);
        let (straight, uninterrupted) = run(&s, &TrialContext::cpu());
        straight.unwrap();
        let ckpt = tempfile::tempdir().unwrap();
        // 5 batches per epoch: the 13th check is batch 3 of epoch 3, after two prunings.
        let (first, before) = run(&s, &ctx_in(ckpt.path(), StopFlag::after_checks(13), None));
        assert!(matches!(first, Err(TrialError::Interrupted)), "{first:?}");
        assert_eq!(before.len(), 2);
        let (second, after) = run(&s, &ctx_in(ckpt.path(), StopFlag::default(), None));
        second.unwrap();
        let resumed: Vec<EpochRecord> = before.into_iter().chain(after).collect();
        assert_same_runs(&format!("{optimizer}"), &resumed, &uninterrupted, relative(SAME_KERNELS));
        let s = metric(&uninterrupted, "sparsity");
        assert!(s[1] > 0.0 && s[3] > s[1], "{s:?}");
    }
}

/// Momentum and Adam's moments hold values for weights pruned after training started; the masks
/// keep those weights at exactly zero through every later step all the same.
#[test]
fn pruned_weights_stay_zero_through_momentum_and_adam_state() {
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW] {
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(1);
        let vars = VarStore::new(Device::Cpu);
        let w = vars.root().sub("layer0").var("weight", &[6, 5], tch::nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let masks = Masks::new(&vars);
        let mut cfg = OptimizerConfig::new(kind, 0.1);
        cfg.momentum = 0.9;
        cfg.weight_decay = 0.01;
        let mut opt = Optimizer::new(cfg, &vars);
        opt.set_masks(&masks.by_variable()).unwrap();
        let x = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
        let step = |opt: &mut Optimizer| {
            opt.zero_grad();
            x.matmul(&w.tr()).pow_tensor_scalar(2).sum(Kind::Float).backward();
            opt.step(0.1);
        };
        for _ in 0..5 {
            step(&mut opt);
        }
        masks.prune_magnitude(0.6, Scope::Global);
        let pruned = masks.layers[0].mask.eq(0.0);
        assert_eq!(pruned.sum(Kind::Int64).int64_value(&[]), 18);
        for _ in 0..20 {
            step(&mut opt);
            let leaked = w.masked_select(&pruned).abs().max().double_value(&[]);
            assert_eq!(leaked, 0.0, "{kind:?}: a pruned weight moved");
        }
        assert!(w.masked_select(&pruned.logical_not()).ne(0.0).all().int64_value(&[]) == 1);
    }
}

#[test]
fn dense_sparse_and_cut_down_forward_passes_compute_the_same_function() {
    let _rng = crate::torch_rng_lock();
    tch::manual_seed(2);
    let mut layers: inference::Layers = [(20, 12), (10, 20), (3, 10)]
        .iter()
        .map(|&(o, i)| {
            (Tensor::randn([o, i], (Kind::Float, Device::Cpu)), Tensor::randn([o], (Kind::Float, Device::Cpu)))
        })
        .collect();
    // Neurons 0-4 of the first hidden layer removed, and random weights zeroed everywhere.
    let _ = layers[0].0.narrow(0, 0, 5).zero_();
    let _ = layers[0].1.narrow(0, 0, 5).zero_();
    for (w, _) in &mut layers {
        let keep = Tensor::rand(w.size().as_slice(), (Kind::Float, Device::Cpu)).gt(0.5).to_kind(Kind::Float);
        let _ = w.g_mul_(&keep);
    }
    let x = Tensor::randn([7, 12], (Kind::Float, Device::Cpu));
    let dense = forward(&layers, &x, false);
    let csr: Vec<(Tensor, Tensor)> = layers.iter().map(|(w, b)| (w.to_sparse_csr(None), b.shallow_clone())).collect();
    let smaller = cut_out_removed_neurons(&layers);
    assert_eq!(smaller[0].0.size(), [15, 12]);
    assert_eq!(smaller[1].0.size()[1], 15);
    for (what, out) in [("csr", forward(&csr, &x, true)), ("smaller", forward(&smaller, &x, false))] {
        let diff = (&out - &dense).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{what}: {diff}");
    }
    let t = inference::time(&layers, &x);
    assert!(t.dense_ms > 0.0 && t.sparse_ms > 0.0 && t.smaller_ms > 0.0, "{t:?}");
}

#[test]
fn int8_weights_round_within_half_a_step_and_keep_zeros() {
    let _rng = crate::torch_rng_lock();
    tch::manual_seed(3);
    let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu))
        * Tensor::from_slice(&[1.0f32, 10.0, 0.1, 0.0]).view([4, 1, 1, 1]);
    let _ = w.narrow(1, 0, 1).zero_();
    let q = int8_round_trip(&w);
    assert_eq!(q.size(), w.size());
    for c in 0..4 {
        let (wc, qc) = (w.get(c), q.get(c));
        let step = wc.abs().max().double_value(&[]) / 127.0;
        let err = (&qc - &wc).abs().max().double_value(&[]);
        assert!(err <= step / 2.0 + 1e-6, "channel {c}: error {err} over half a step {step}");
        let distinct = qc.flatten(0, -1).unique_dim(0, false, false, false).0.size()[0];
        assert!(distinct <= 255, "{distinct}");
    }
    assert_eq!(q.narrow(1, 0, 1).abs().max().double_value(&[]), 0.0, "a pruned weight stays pruned");
}

#[test]
fn byte_counts_follow_the_storage_formats() {
    let vars = VarStore::new(Device::Cpu);
    let _rng = crate::torch_rng_lock();
    let net = crate::models::dense::Dense::new(&vars.root(), &[10, 8, 3], crate::models::dense::Activation::Relu, 1);
    drop(net);
    let masks = Masks::new(&vars);
    let all = crate::models::parameter_count(&vars);
    assert_eq!(all, 10 * 8 + 8 + 8 * 3 + 3);
    let dense = footprint::bytes(all, &masks);
    assert_eq!(dense.dense, 4.0 * all as f64);
    // Nothing pruned: CSR pays 4 bytes of index per value plus the row pointers.
    assert_eq!(dense.sparse, 4.0 * 11.0 + 8.0 * 104.0 + 4.0 * (9 + 4) as f64);
    assert_eq!(dense.int8, 4.0 * 11.0 + 104.0 + 4.0 * 11.0);
    masks.prune_magnitude(0.75, Scope::Global);
    let pruned = footprint::bytes(all, &masks);
    assert_eq!(pruned.sparse, 4.0 * 11.0 + 8.0 * 26.0 + 4.0 * (9 + 4) as f64);
    assert_eq!(pruned.sparse_int8, 4.0 * 11.0 + 5.0 * 26.0 + 4.0 * (9 + 4) as f64 + 4.0 * 11.0);
}

#[test]
fn quantized_accuracy_is_reported_next_to_the_fp32_one() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("set");
    let (result, records) = run(&spec(&data, &[("quantize", json!(true))]), &TrialContext::cpu());
    result.unwrap();
    let last = &records.last().unwrap().metrics;
    assert!((last["test_acc_int8"] - last["test_acc"]).abs() <= 0.1, "{last:?}");
    assert!(last["model_bytes_int8"] < last["model_bytes_dense"] / 3.0, "{last:?}");
}

#[test]
fn convolutional_networks_prune_their_kernels_too() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("set");
    let s = spec(&data, &[("model", json!("cnn5")), ("width", json!(4)), ("epochs", json!(3)), ("end", json!(1))]);
    let (result, records) = run(&s, &TrialContext::cpu());
    result.unwrap();
    let last = &records.last().unwrap().metrics;
    assert!((last["sparsity"] - 0.8).abs() < 1e-3, "{last:?}");
    for layer in ["conv0", "conv3", "fc"] {
        assert!(last.contains_key(&format!("sparsity/{layer}")), "{layer}: {last:?}");
    }
    assert!(!last.contains_key("inference_ms_sparse"), "CSR timing is for fully connected networks");
}

/// The shipped small study shows what its header promises, on its own trials (seed 0): accuracy
/// flat to 90% and collapsing by 99.5%, magnitude far ahead of random at 98%, gradual ahead of
/// one-shot at 98%.
#[test]
fn small_study_shows_the_collapse_and_which_pruning_holds_up() {
    let _one = OneThread::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/sparsity-small.toml");
    let file = sweep_spec::SweepFile::read(&path).unwrap();
    let mut acc = std::collections::BTreeMap::new();
    for trial in sweep_spec::expand(&file).unwrap() {
        let p = &trial.params;
        let key = (
            p["method"].as_str().unwrap().to_string(),
            p["pruning"].as_str().unwrap().to_string(),
            (p["final_sparsity"].as_f64().unwrap() * 1000.0).round() as i64,
        );
        let wanted = [("magnitude", "one_shot", 0), ("magnitude", "one_shot", 900), ("magnitude", "one_shot", 995)]
            .iter()
            .chain(&[("magnitude", "one_shot", 980), ("random", "one_shot", 980), ("magnitude", "gradual", 980)])
            .any(|(m, s, k)| key == (m.to_string(), s.to_string(), *k));
        if !wanted || p["seed"].as_i64() != Some(0) {
            continue;
        }
        let (result, records) = run(&trial, &TrialContext::cpu());
        result.unwrap();
        let last = &records.last().unwrap().metrics;
        eprintln!("{key:?}: test_acc {:.4}, sparsity {:.4}", last["test_acc"], last["sparsity"]);
        acc.insert(key, last["test_acc"]);
    }
    let at = |m: &str, s: &str, k: i64| acc[&(m.to_string(), s.to_string(), k)];
    let dense = at("magnitude", "one_shot", 0);
    assert!(dense > 0.9, "dense {dense}");
    assert!(at("magnitude", "one_shot", 900) > dense - 0.02, "{acc:?}");
    assert!(at("magnitude", "one_shot", 995) < dense - 0.3, "{acc:?}");
    assert!(at("magnitude", "one_shot", 980) > at("random", "one_shot", 980) + 0.3, "{acc:?}");
    assert!(at("magnitude", "gradual", 980) > at("magnitude", "one_shot", 980) + 0.01, "{acc:?}");
}

/// Each round of iterative pruning restarts from the weights of `rewind_epoch`, masked, with an
/// optimizer that has forgotten its steps; the weights the round before trained are gone.
#[test]
fn iterative_pruning_rewinds_the_survivors_and_resets_the_optimizer() {
    let mut params = SPARSITY.defaults();
    for (k, v) in
        [("pruning", json!("iterative")), ("epochs", json!(3)), ("rounds", json!(3)), ("rewind_epoch", json!(1))]
    {
        params.insert(k.into(), v);
    }
    let p = super::Params::parse(&params).unwrap();
    let vars = VarStore::new(Device::Cpu);
    let _rng = crate::torch_rng_lock();
    let _net = crate::models::dense::Dense::new(&vars.root(), &[6, 5, 2], crate::models::dense::Activation::Relu, 3);
    let masks = Masks::new(&vars);
    let rewind = Some(super::Rewind::new(&vars));
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam, 0.1), &vars);
    opt.set_masks(&masks.by_variable()).unwrap();
    let mut pruner = super::Pruner { p: &p, masks: &masks, rewind };
    let weight = || masks.layers[0].weight.copy();
    let train = |opt: &mut Optimizer| {
        opt.zero_grad();
        masks.layers.iter().map(|l| l.weight.sum(Kind::Float)).fold(Tensor::from(0.0f32), |a, b| a + b).backward();
        opt.step(0.1);
    };
    use crate::harness::BetweenEpochs;
    pruner.before_epoch(0, &mut opt);
    train(&mut opt);
    pruner.before_epoch(1, &mut opt);
    let at_rewind = weight();
    train(&mut opt);
    assert!(weight().ne_tensor(&at_rewind).any().int64_value(&[]) == 1, "training moved the weights");
    assert_eq!(opt.steps(), 2);
    pruner.before_epoch(3, &mut opt);
    let mask = masks.layers[0].mask.copy();
    assert!(mask.eq(0.0).any().int64_value(&[]) == 1, "round 1 pruned");
    assert!(weight().equal(&(&at_rewind * &mask)), "round 1 starts from the epoch-1 weights, masked");
    assert_eq!(opt.steps(), 0, "and with a fresh optimizer");
}
