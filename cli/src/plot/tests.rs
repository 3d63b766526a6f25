//! End-to-end checks of `plot_sweep` on the synthetic sweep of `testdata`: the files it writes,
//! what the PNGs decode to, and what the SVGs say.

use super::*;
use std::path::Path;

fn font() -> &'static Path {
    Path::new(font::DEFAULT_FONT)
}

/// A checkpoint root with nothing in it: only the sparsity figures read checkpoints.
fn no_checkpoints() -> &'static Path {
    Path::new("/nonexistent/sweep-checkpoints")
}

fn svg_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn double_descent_writes_curves_and_one_heat_map_per_noise_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trials = testdata::trials();
    let metrics = testdata::metrics(&trials);
    let plotted =
        plot_sweep("synthetic-dd", &trials, || Ok(metrics), no_checkpoints(), dir.path(), font()).expect("plot");
    let names: Vec<String> =
        plotted.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "synthetic-dd-test-error-vs-width.png",
            "synthetic-dd-test-error-vs-width.svg",
            "synthetic-dd-test-error-heatmap-noise-0.1.png",
            "synthetic-dd-test-error-heatmap-noise-0.1.svg",
            "synthetic-dd-test-error-heatmap-noise-0.2.png",
            "synthetic-dd-test-error-heatmap-noise-0.2.svg",
        ]
    );
    assert!(plotted.notes.is_empty(), "{:?}", plotted.notes);
    for png in plotted.files.iter().filter(|p| p.extension().is_some_and(|e| e == "png")) {
        let img = image::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!((img.width(), img.height()), (1000, 640), "{}", png.display());
    }

    let curves = svg_text(&plotted.files[1]);
    for text in [
        "synthetic-dd",
        "width (log scale)",
        "test error",
        "noise 0.1: peak 0.65 at width 40",
        "noise 0.2: peak 0.7 at width 40",
        "mean over 3 seeds",
    ] {
        assert!(curves.contains(text), "curve SVG lacks {text:?}");
    }
    let heat = svg_text(&plotted.files[3]);
    for text in ["synthetic-dd: noise 0.1", "epoch", "width", "mean test error", "0.65"] {
        assert!(heat.contains(text), "heat map SVG lacks {text:?}");
    }
}

#[test]
fn one_epoch_and_constant_noise_give_one_line_one_heat_map_and_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trials: Vec<TrialRow> = testdata::trials().into_iter().filter(|t| t.params["label_noise"] == 0.1).collect();
    let metrics: Vec<MetricRow> =
        testdata::metrics(&trials).into_iter().filter(|m| m.epoch == testdata::EPOCHS).collect();
    let plotted = plot_sweep("one-epoch", &trials, || Ok(metrics), no_checkpoints(), dir.path(), font()).expect("plot");
    assert_eq!(plotted.files.len(), 4);
    assert!(plotted.files[2].ends_with("one-epoch-test-error-heatmap.png"));
    assert!(plotted.notes.iter().any(|n| n.contains("one epoch")), "{:?}", plotted.notes);
    assert!(svg_text(&plotted.files[1]).contains("noise 0.1: peak"));
}

#[test]
fn other_workloads_plot_each_final_metric_against_the_first_numeric_parameter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = testdata::trials();
    for t in &mut trials {
        t.workload = "command".into();
    }
    let plotted =
        plot_sweep("generic", &trials, || panic!("metrics are not needed"), no_checkpoints(), dir.path(), font())
            .expect("plot");
    let names: Vec<String> =
        plotted.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // `label_noise` sorts before `width`, so it is the x axis; widths and seeds are averaged over.
    assert_eq!(
        names,
        [
            "generic-test-error-vs-label-noise.png",
            "generic-test-error-vs-label-noise.svg",
            "generic-train-error-vs-label-noise.png",
            "generic-train-error-vs-label-noise.svg"
        ]
    );
    let svg = svg_text(&plotted.files[1]);
    assert!(svg.contains("label_noise") && svg.contains("mean over 3 seeds and width (5 values)"), "subtitle and axis");
}

#[test]
fn nothing_numeric_varying_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = testdata::trials();
    trials.truncate(1);
    let err = plot_sweep("flat", &trials, || Ok(vec![]), no_checkpoints(), dir.path(), font()).unwrap_err().to_string();
    assert!(err.contains("no parameter varies") && err.contains("sweep results flat"), "{err}");
}

#[test]
fn unfinished_trials_are_left_out_with_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut trials = testdata::trials();
    trials[0].status = "running".into();
    let metrics = testdata::metrics(&trials);
    let plotted = plot_sweep("partial", &trials, || Ok(metrics), no_checkpoints(), dir.path(), font()).expect("plot");
    assert!(plotted.notes.iter().any(|n| n.contains("1 running")), "{:?}", plotted.notes);
    for t in &mut trials {
        t.status = "queued".into();
    }
    let err =
        plot_sweep("partial", &trials, || Ok(vec![]), no_checkpoints(), dir.path(), font()).unwrap_err().to_string();
    assert!(err.contains("no succeeded trials"), "{err}");
}

#[test]
fn numbers_read_as_people_write_them() {
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(200.0), "200");
    assert_eq!(fmt_num(0.7153), "0.715");
    assert_eq!(fmt_num(0.30000000000000004), "0.3");
    assert_eq!(fmt_num(0.05), "0.05");
    assert_eq!(fmt_num(12.345), "12.3");
    assert_eq!(fmt_num(1e-5), "1.00e-5");
}

#[test]
fn slugs_are_file_name_safe() {
    assert_eq!(slug("noise 0.1, weight decay 0"), "noise-0.1-weight-decay-0");
    assert_eq!(slug("class_acc/cat"), "class-acc-cat");
}

#[test]
fn a_peak_at_the_edge_of_the_grid_is_pointed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trials: Vec<TrialRow> =
        testdata::trials().into_iter().filter(|t| t.params["width"].as_i64() >= Some(40)).collect();
    let metrics = testdata::metrics(&trials);
    let plotted = plot_sweep("edge", &trials, || Ok(metrics), no_checkpoints(), dir.path(), font()).expect("plot");
    assert!(
        plotted.notes.iter().any(|n| n.contains("noise 0.1: test error is highest at the smallest width (40)")),
        "{:?}",
        plotted.notes
    );
}

/// A long-tail sweep (2 losses x 2 samplers x 2 seeds over 3 classes of 500, 50 and 5 images):
/// shot-group bars with one row per method, and one per-class figure per sampler.
#[test]
fn long_tail_sweeps_get_shot_group_bars_and_per_class_accuracy() {
    let mut trials = Vec::new();
    for (li, loss) in ["ce", "logit_adjust"].iter().enumerate() {
        for sampler in ["instance", "class_balanced"] {
            for seed in [0, 1] {
                let mut t = testdata::trials().remove(0);
                t.workload = "long_tail".into();
                t.trial_id = format!("{loss}-{sampler}-{seed}");
                t.params = serde_json::Map::new();
                t.params.insert("loss".into(), serde_json::json!(loss));
                t.params.insert("sampler".into(), serde_json::json!(sampler));
                t.params.insert("seed".into(), serde_json::json!(seed));
                let few = 0.2 + 0.4 * li as f64;
                t.finals = [
                    ("test_acc", 0.6),
                    ("test_acc_many", 0.9),
                    ("test_acc_medium", 0.6),
                    ("test_acc_few", few),
                    ("class_acc/0", 0.9),
                    ("class_acc/1", 0.6),
                    ("class_acc/2", few),
                    ("class_train_count/0", 500.0),
                    ("class_train_count/1", 50.0),
                    ("class_train_count/2", 5.0),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
                trials.push(t);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let plotted =
        plot_sweep("lt", &trials, || panic!("finals suffice"), no_checkpoints(), dir.path(), font()).expect("plot");
    let names: Vec<String> =
        plotted.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for name in ["lt-shot-groups", "lt-class-accuracy-sampler-instance", "lt-class-accuracy-sampler-class-balanced"] {
        assert!(names.contains(&format!("{name}.png")) && names.contains(&format!("{name}.svg")), "{names:?}");
    }
    let bars = svg_text(&dir.path().join("lt-shot-groups.svg"));
    for label in ["ce / class_balanced", "logit_adjust / instance", "few-shot (&lt; 20)", "mean over 2 seeds"] {
        assert!(bars.contains(label), "{label} missing from the bar chart");
    }
    let per_class = svg_text(&dir.path().join("lt-class-accuracy-sampler-instance.svg"));
    assert!(per_class.contains("loss logit_adjust") && per_class.contains("log scale"), "per-class figure");
}

#[test]
fn chosen_axes_draw_the_final_metric_or_learning_curves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trials = testdata::trials();
    let axes = chosen::Axes { x: Some("label_noise".into()), y: Some("test_error".into()), curves: false };
    let plotted =
        plot_chosen("pick", &trials, &axes, || panic!("finals need no metrics"), dir.path(), font()).expect("plot");
    assert!(plotted.files[0].ends_with("pick-test-error-vs-label-noise.png"), "{:?}", plotted.files);
    assert!(svg_text(&plotted.files[1]).contains("label_noise"));

    let curves = chosen::Axes { x: Some("width".into()), y: Some("test_error".into()), curves: true };
    let metrics = testdata::metrics(&trials);
    let plotted = plot_chosen("pick", &trials, &curves, || Ok(metrics), dir.path(), font()).expect("plot");
    assert!(plotted.files[0].ends_with("pick-test-error-per-epoch-by-width.png"), "{:?}", plotted.files);
    let svg = svg_text(&plotted.files[1]);
    for text in ["epoch", "width 10", "width 160"] {
        assert!(svg.contains(text), "learning-curve SVG lacks {text:?}");
    }

    let wrong = chosen::Axes { x: Some("widht".into()), y: Some("test_error".into()), curves: false };
    let err = plot_chosen("pick", &trials, &wrong, || Ok(Vec::new()), dir.path(), font()).unwrap_err().to_string();
    assert!(err.contains("--x `widht`") && err.contains("width"), "{err}");
    let wrong = chosen::Axes { x: Some("width".into()), y: Some("accuracy".into()), curves: false };
    let err = plot_chosen("pick", &trials, &wrong, || Ok(Vec::new()), dir.path(), font()).unwrap_err().to_string();
    assert!(err.contains("--y `accuracy`") && err.contains("test_error"), "{err}");
}

fn file_names(plotted: &Plotted) -> Vec<String> {
    plotted.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

/// A sparsity sweep (2 methods × 3 targets × 2 seeds and a dense trial) with the checkpoints of
/// the dense trial and of the most pruned magnitude trial of its seed: all four figures.
#[test]
fn sparsity_sweeps_get_accuracy_layer_weight_and_mask_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    testdata::write_lenet_checkpoint(&checkpoints, "sp", "sp-dense-s0", 0.0);
    testdata::write_lenet_checkpoint(&checkpoints, "sp", "sp-magnitude-0.99-s0", 0.99);
    let trials = testdata::sparsity_trials();
    let metrics = testdata::sparsity_metrics(&trials);
    let out = dir.path().join("plots");
    let plotted = plot_sweep("sp", &trials, || Ok(metrics), &checkpoints, &out, font()).expect("plot");
    assert!(plotted.notes.is_empty(), "{:?}", plotted.notes);
    let names = file_names(&plotted);
    let expected: Vec<String> = ["accuracy-vs-sparsity", "layer-sparsity", "first-layer-weights", "masks"]
        .iter()
        .flat_map(|f| [format!("sp-{f}.png"), format!("sp-{f}.svg")])
        .collect();
    assert_eq!(names, expected);
    for png in plotted.files.iter().filter(|p| p.extension().is_some_and(|e| e == "png")) {
        image::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    }

    let accuracy = svg_text(&out.join("sp-accuracy-vs-sparsity.svg"));
    for text in [
        "Test accuracy against sparsity",
        "sweep sp · 13 trials · seeds 0, 1",
        "magnitude, gradual",
        "random, one-shot",
        "dense: 97.8%",
        "int8 weights",
        "90%",
        "99%",
    ] {
        assert!(accuracy.contains(text), "accuracy SVG lacks {text:?}");
    }
    let layers = svg_text(&out.join("sp-layer-sparsity.svg"));
    for text in ["target 99%", "layer0", "layer2", "all prunable weights", "sweep sp · 4 trials"] {
        assert!(layers.contains(text), "layer SVG lacks {text:?}");
    }
    let weights = svg_text(&out.join("sp-first-layer-weights.svg"));
    for text in ["magnitude, gradual at target 99%", "layer0.weight: units 1-100 of 300", "data:image/png;base64,"] {
        assert!(weights.contains(text), "weights SVG lacks {text:?}");
    }
    let masks = svg_text(&out.join("sp-masks.svg"));
    for text in ["layer0: 300 × 784, 99", "layer1: 100 × 300", "layer2: 10 × 100", "sweep sp · 1 trial · seed 0"] {
        assert!(masks.contains(text), "masks SVG lacks {text:?}");
    }
}

#[test]
fn without_checkpoints_the_sparsity_images_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trials = testdata::sparsity_trials();
    let metrics = testdata::sparsity_metrics(&trials);
    let missing = dir.path().join("checkpoints");
    let plotted = plot_sweep("sp", &trials, || Ok(metrics), &missing, dir.path(), font()).expect("plot");
    assert_eq!(file_names(&plotted).len(), 4, "{:?}", plotted.files);
    let where_ = missing.join("sp").display().to_string();
    assert!(plotted.notes.iter().any(|n| n.contains(&where_) && n.contains("--checkpoints")), "{:?}", plotted.notes);
    // A sweep folder without the chosen trial's checkpoint names the file it looked for.
    std::fs::create_dir_all(missing.join("sp")).unwrap();
    let metrics = testdata::sparsity_metrics(&trials);
    let plotted = plot_sweep("sp", &trials, || Ok(metrics), &missing, dir.path(), font()).expect("plot");
    assert_eq!(file_names(&plotted).len(), 4, "{:?}", plotted.files);
    assert!(
        plotted.notes.iter().any(|n| n.contains("sp-magnitude-0.99-s0/latest/model.safetensors")),
        "{:?}",
        plotted.notes
    );
}

/// A cnn5 sweep: the first convolution's kernels as tiles, and five masks in two columns.
#[test]
fn cnn5_checkpoints_give_kernel_tiles_and_a_mask_per_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    testdata::write_cnn5_checkpoint(&checkpoints, "sp", "sp-dense-s0", 0.0);
    testdata::write_cnn5_checkpoint(&checkpoints, "sp", "sp-magnitude-0.99-s0", 0.9);
    let mut trials = testdata::sparsity_trials();
    for t in &mut trials {
        t.params.insert("model".into(), serde_json::json!("cnn5"));
    }
    let metrics = testdata::sparsity_metrics(&trials);
    let out = dir.path().join("plots");
    let plotted = plot_sweep("sp", &trials, || Ok(metrics), &checkpoints, &out, font()).expect("plot");
    assert!(plotted.notes.is_empty(), "{:?}", plotted.notes);
    let weights = svg_text(&out.join("sp-first-layer-weights.svg"));
    assert!(weights.contains("conv0.weight: filters 1-16 of 16"), "kernel tiles");
    let masks = svg_text(&out.join("sp-masks.svg"));
    for text in ["conv0: 16 × 27, ", "conv3: 128 × 576, 90% pruned", "fc: 10 × 128"] {
        assert!(masks.contains(text), "masks SVG lacks {text:?}");
    }
    let img = image::open(out.join("sp-masks.png")).expect("png");
    assert!(img.width() > 1000, "five masks go in two columns: {}", img.width());
}

/// A chess sweep of two widths x two learning rates: each width drawn once, at the learning rate
/// with the higher final legal-move rate, in both figures.
#[test]
fn seq2seq_sweeps_get_legal_move_and_next_move_curves_per_width_at_its_best_rate() {
    let mut trials = Vec::new();
    let mut metrics = Vec::new();
    for (d, lr, legal) in [(32, 1e-3, 0.80), (32, 3e-3, 0.70), (64, 1e-3, 0.85), (64, 3e-3, 0.90)] {
        let mut t = testdata::trials().remove(0);
        t.sweep = "ch".into();
        t.trial_id = format!("ch-{d}-{lr}");
        t.workload = "seq2seq".into();
        t.params = serde_json::Map::new();
        t.params.insert("d_model".into(), serde_json::json!(d));
        t.params.insert("optimizer".into(), serde_json::json!({ "name": "adamw", "lr": lr }));
        t.params.insert("seed".into(), serde_json::json!(0));
        t.finals = [("legal_move_rate".to_string(), legal), ("next_move_acc".to_string(), 0.05)].into();
        for epoch in 1..=3 {
            for (metric, value) in [("legal_move_rate", legal * epoch as f64 / 3.0), ("next_move_acc", 0.05)] {
                metrics.push(sweep_results::MetricRow {
                    sweep: "ch".into(),
                    trial_id: t.trial_id.clone(),
                    attempt: 1,
                    epoch,
                    step: epoch as i64,
                    metric: metric.into(),
                    value,
                    recorded_at_us: epoch as i64,
                    superseded: false,
                });
            }
        }
        trials.push(t);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("plots");
    let plotted = plot_sweep("ch", &trials, || Ok(metrics), no_checkpoints(), &out, font()).expect("plot");
    assert_eq!(
        file_names(&plotted),
        ["legal-move-rate", "next-move-acc"]
            .iter()
            .flat_map(|f| [format!("ch-{f}-per-epoch.png"), format!("ch-{f}-per-epoch.svg")])
            .collect::<Vec<_>>()
    );
    let legal = svg_text(&out.join("ch-legal-move-rate-per-epoch.svg"));
    for text in ["d model 32, best: adamw lr 0.001", "d model 64, best: adamw lr 0.003", "legal move rate"] {
        assert!(legal.contains(text), "legal-move SVG lacks {text:?}");
    }
    assert!(!legal.contains("d model 32, best: adamw lr 0.003"));
}

/// A multimodal sweep (3 fusions x 2 seeds): one row of bars per fusion, with both modalities and
/// with each removed.
#[test]
fn multimodal_sweeps_get_bars_per_fusion_with_each_modality_removed() {
    let mut trials = Vec::new();
    for (fi, fusion) in ["image_only", "text_only", "concat"].iter().enumerate() {
        for seed in [0, 1] {
            let mut t = testdata::trials().remove(0);
            t.workload = "multimodal".into();
            t.trial_id = format!("{fusion}-{seed}");
            t.params = serde_json::Map::new();
            t.params.insert("fusion".into(), serde_json::json!(fusion));
            t.params.insert("seed".into(), serde_json::json!(seed));
            t.finals = [("test_acc", 0.3 + 0.3 * fi as f64), ("test_acc/no_image", 0.25), ("test_acc/no_text", 0.33)]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            trials.push(t);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let plotted =
        plot_sweep("mm", &trials, || panic!("finals suffice"), no_checkpoints(), dir.path(), font()).expect("plot");
    assert_eq!(file_names(&plotted), vec!["mm-fusions.png", "mm-fusions.svg"]);
    let bars = svg_text(&dir.path().join("mm-fusions.svg"));
    for label in ["image_only", "text_only", "concat", "image removed", "caption removed", "mean over 2 seeds"] {
        assert!(bars.contains(label), "{label} missing from the bar chart");
    }
}
