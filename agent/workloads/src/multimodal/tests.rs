//! The workload end to end on a synthetic set written in the CUB layout and read back through the
//! real reader: every fusion trains and reports, an absent modality contributes nothing, a trial
//! stopped mid-epoch resumes to the same records, and the shipped small study shows fusion beating
//! each modality alone.

use super::model::{Fusion, Layout, MultimodalNet, Spec, TextEncoder};
use crate::data::cub::{write_synthetic, CubSynth};
use crate::dispatch::{checkpointed_ctx as ctx_in, run_recorded as run};
use crate::harness::StopFlag;
use crate::models::Arch;
use crate::numeric_checks::{assert_same_runs, relative, SAME_KERNELS};
use crate::{TrialContext, TrialError};
use serde_json::{json, Map, Value};
use std::path::Path;
use sweep_spec::workloads::MULTIMODAL;
use sweep_spec::{DataRef, EpochRecord, TrialSpec};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn small_set(dir: &Path) {
    let synth =
        CubSynth { image_groups: 2, text_groups: 2, train_per_class: 16, test_per_class: 6, image_size: 16, seed: 3 };
    write_synthetic(dir, &synth).unwrap();
}

fn spec(data: &Path, changes: &[(&str, Value)]) -> TrialSpec {
    let mut params = MULTIMODAL.defaults();
    for (k, v) in
        [("width", json!(4)), ("dim", json!(16)), ("epochs", json!(1)), ("batch_size", json!(16)), ("seed", json!(2))]
            .iter()
            .chain(changes)
    {
        params.insert(k.to_string(), v.clone());
    }
    let mut spec = crate::dispatch::trial_spec(MULTIMODAL.name, params);
    spec.data = Some(DataRef { format: "cub".into(), path: Some(data.display().to_string()), options: Map::new() });
    spec
}

#[test]
fn every_fusion_and_encoder_trains_and_reports_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    small_set(dir.path());
    let mut runs: Vec<Vec<(&str, Value)>> =
        Fusion::ALL.iter().map(|f| vec![("fusion", json!(f.name())), ("modality_dropout", json!(0.2))]).collect();
    runs.push(vec![("fusion", json!("gated")), ("text_encoder", json!("transformer")), ("heads", json!(2))]);
    runs.push(vec![
        ("fusion", json!("cross_attention")),
        ("text_encoder", json!("transformer")),
        ("dropout", json!(0.1)),
    ]);
    runs.push(vec![("fusion", json!("film")), ("image_encoder", json!("preact_resnet18")), ("width", json!(2))]);
    for changes in runs {
        let (result, records) = run(&spec(dir.path(), &changes), &TrialContext::cpu());
        result.unwrap_or_else(|e| panic!("{changes:?}: {e}"));
        let m = &records.last().unwrap().metrics;
        for key in
            ["train_loss", "train_acc", "test_loss", "test_acc", "test_acc/no_image", "test_acc/no_text", "class_acc/3"]
        {
            let v = m.get(key).unwrap_or_else(|| panic!("{changes:?}: no {key} in {m:?}"));
            assert!(v.is_finite(), "{changes:?}: {key} = {v}");
        }
        assert!(m["parameters"] > 100.0);
        // Four classes of six test images: the class accuracies average to the accuracy.
        let mean = (0..4).map(|k| m[&format!("class_acc/{k}")]).sum::<f64>() / 4.0;
        assert!((mean - m["test_acc"]).abs() < 1e-9, "{changes:?}: {mean} against {}", m["test_acc"]);
    }
}

/// A network of `fusion` over 2 classes of 8 px images and 5-token captions, in evaluation mode.
fn net(fusion: Fusion, text_encoder: TextEncoder) -> (VarStore, MultimodalNet, Layout) {
    let _rng = crate::torch_rng_lock();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let layout = Layout { channels: 3, side: 8, text_len: 5 };
    let spec = Spec {
        layout,
        fusion,
        image_encoder: Arch::Cnn5,
        width: 2,
        text_encoder,
        vocab: 20,
        dim: 8,
        heads: 2,
        text_layers: 1,
        classes: 3,
        dropout: 0.0,
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
    };
    let net = MultimodalNet::new(&vs.root(), &spec).unwrap();
    (vs, net, layout)
}

/// Rows of random pixels and captions with the given presence flags.
fn rows(layout: Layout, flags: &[(i64, i64)], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let n = flags.len() as i64;
    let f = Tensor::from_slice(&flags.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>()).view([n, 2]);
    let pixels = Tensor::randint(256, [n, layout.pixels()], (Kind::Int64, Device::Cpu));
    let text = Tensor::randint_low(5, 20, [n, layout.text_len], (Kind::Int64, Device::Cpu));
    Tensor::cat(&[f, pixels, text], 1)
}

/// Whatever an absent modality's row holds, the logits are the same: the network reads only the
/// modalities that are present. Checked for every fusion, with pixels and tokens redrawn.
#[test]
fn an_absent_modality_contributes_nothing() {
    for fusion in Fusion::ALL {
        for encoder in [TextEncoder::Bag, TextEncoder::Transformer] {
            let (_vs, net, layout) = net(fusion, encoder);
            let flags = [(0, 1), (1, 0), (0, 1), (1, 0)];
            let (a, b) = (rows(layout, &flags, 1), rows(layout, &flags, 2));
            let pixels = |x: &Tensor, r: i64| x.narrow(1, 2, layout.pixels()).get(r);
            let caption = |x: &Tensor, r: i64| x.narrow(1, 2 + layout.pixels(), layout.text_len).get(r);
            // `b` with what is present taken from `a`: the images of rows 1 and 3, the captions of
            // rows 0 and 2. An absent caption is all padding, as the batches write it.
            let mixed = b.copy();
            for r in [1, 3] {
                pixels(&mixed, r).copy_(&pixels(&a, r));
                let _ = caption(&a, r).fill_(0);
                let _ = caption(&mixed, r).fill_(0);
            }
            for r in [0, 2] {
                caption(&mixed, r).copy_(&caption(&a, r));
            }
            let (la, lm) = tch::no_grad(|| (net.forward_t(&a, false), net.forward_t(&mixed, false)));
            assert!(la.allclose(&lm, 1e-5, 1e-6, false), "{fusion} {encoder:?}: {la} {lm}");
        }
    }
}

/// Removing the image changes nothing for text_only, removing the text nothing for image_only,
/// and each changes the logits of a fused network.
#[test]
fn removing_a_modality_matters_only_where_it_is_read() {
    for fusion in Fusion::ALL {
        let (_vs, net, layout) = net(fusion, TextEncoder::Bag);
        let full = rows(layout, &[(1, 1), (1, 1)], 4);
        let without = |col: i64| {
            let x = full.copy();
            let _ = x.narrow(1, col, 1).fill_(0);
            if col == 1 {
                let _ = x.narrow(1, 2 + layout.pixels(), layout.text_len).fill_(0);
            } else {
                let _ = x.narrow(1, 2, layout.pixels()).fill_(0);
            }
            x
        };
        let logits = |x: &Tensor| tch::no_grad(|| net.forward_t(x, false));
        let base = logits(&full);
        let same = |x: &Tensor| logits(x).allclose(&base, 1e-6, 1e-7, false);
        assert_eq!(same(&without(0)), fusion == Fusion::TextOnly, "{fusion}: image removed");
        assert_eq!(same(&without(1)), fusion == Fusion::ImageOnly, "{fusion}: text removed");
    }
}

/// A stop at a batch of the second epoch checkpoints; the resumed run reports what the run that
/// was never stopped reports, with modality dropout and dropout drawing at every batch.
#[test]
fn a_trial_stopped_mid_epoch_resumes_to_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    small_set(dir.path());
    let s = spec(
        dir.path(),
        &[
            ("fusion", json!("cross_attention")),
            ("text_encoder", json!("transformer")),
            ("heads", json!(2)),
            ("epochs", json!(2)),
            ("modality_dropout", json!(0.3)),
            ("dropout", json!(0.1)),
        ],
    );
    let (straight, uninterrupted) = run(&s, &TrialContext::cpu());
    straight.unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    // 64 training images in batches of 16: the 6th check is batch 2 of epoch 2.
    let (first, before) = run(&s, &ctx_in(ckpt.path(), StopFlag::after_checks(6), None));
    assert!(matches!(first, Err(TrialError::Interrupted)), "{first:?}");
    assert_eq!(before.len(), 1);
    let (second, after) = run(&s, &ctx_in(ckpt.path(), StopFlag::default(), None));
    second.unwrap();
    let resumed: Vec<EpochRecord> = before.into_iter().chain(after).collect();
    assert_same_runs("multimodal", &resumed, &uninterrupted, relative(SAME_KERNELS));
}

#[test]
fn bad_parameters_and_data_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let check = |changes: &[(&str, Value)], expect: &str| {
        let err = crate::check_params(&spec(dir.path(), changes)).unwrap_err().to_string();
        assert!(err.contains(expect), "{changes:?}: {err}");
    };
    check(&[("fusion", json!("<b>sum</b>"))], "params.fusion");
    check(&[("image_encoder", json!("mlp"))], "params.image_encoder");
    check(&[("fusion", json!("cross_attention")), ("dim", json!(10)), ("heads", json!(4))], "params.dim");
    check(&[("modality_dropout", json!(0.6))], "params.modality_dropout");
    check(&[("width", json!(1_000_000))], "params.width: expected at most");
    let mut s = spec(&dir.path().join("missing"), &[]);
    let (result, _) = run(&s, &TrialContext::cpu());
    let err = result.unwrap_err().to_string();
    assert!(err.contains("sweep data synth --cub"), "{err}");
    s.data.as_mut().unwrap().format = "image_folder".into();
    let (result, _) = run(&s, &TrialContext::cpu());
    assert!(result.unwrap_err().to_string().contains("data.format"));
}

/// The shipped small study must show what its header promises: on the synthetic set, where the
/// image tells one part of the class and the caption the other, fusing both beats each alone.
/// Reruns its three plainest trials.
#[test]
fn multimodal_small_study_fuses_better_than_either_modality() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/multimodal-small.toml");
    let file = sweep_spec::SweepFile::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut acc = std::collections::BTreeMap::new();
    for mut trial in sweep_spec::expand(&file).unwrap() {
        let fusion = trial.params["fusion"].as_str().unwrap().to_string();
        if !["image_only", "text_only", "concat"].contains(&fusion.as_str()) || trial.params["modality_dropout"] != 0.0
        {
            continue;
        }
        // The study's own data section, written to a folder of this test.
        trial.data.as_mut().unwrap().path = Some(dir.path().join("cub").display().to_string());
        let (result, records) = run(&trial, &TrialContext::cpu());
        result.unwrap();
        let m = &records.last().unwrap().metrics;
        eprintln!(
            "{fusion}: test_acc {:.3}, no_image {:.3}, no_text {:.3}",
            m["test_acc"], m["test_acc/no_image"], m["test_acc/no_text"]
        );
        acc.insert(fusion, m["test_acc"]);
    }
    let (image, text, fused) = (acc["image_only"], acc["text_only"], acc["concat"]);
    assert!(fused > image + 0.2 && fused > text + 0.2, "{acc:?}");
}
