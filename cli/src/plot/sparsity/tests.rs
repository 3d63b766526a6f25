//! The numbers behind the sparsity figures, on the synthetic sweep of `testdata`.

use super::*;
use crate::plot::testdata::{self, PRUNERS, SPARSITY_SEEDS, TARGETS};
use serde_json::json;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn accuracy_lines_have_the_median_over_seeds_and_a_min_max_band() {
    let rows = testdata::sparsity_trials();
    let refs: Vec<&TrialRow> = rows.iter().collect();
    let trials = trials(&refs, &testdata::sparsity_metrics(&rows));
    let (lines, references) = lines(&trials, TEST_ACC);
    assert_eq!(lines.iter().map(|l| l.label.as_str()).collect::<Vec<_>>(), ["magnitude, gradual", "random, one-shot"]);
    for (line, (method, _)) in lines.iter().zip(PRUNERS) {
        assert_eq!(line.points.iter().map(|p| p.target).collect::<Vec<_>>(), TARGETS);
        for (p, target) in line.points.iter().zip(TARGETS) {
            let at = |seed| testdata::sparsity_acc(method, target, seed);
            // Two seeds: the median is halfway, the band spans both; the superseded first
            // attempt of magnitude 0.5 seed 0 (accuracy 0.1) is not among them.
            assert!(close(p.value.median, (at(0) + at(1)) / 2.0), "{method} {target}: {p:?}");
            assert!(close(p.value.min, at(0)) && close(p.value.max, at(1)), "{method} {target}: {p:?}");
            assert_eq!(p.value.n, SPARSITY_SEEDS.len());
            assert!(close(p.sparsity, target), "{p:?}");
        }
    }
    // Magnitude pruning at 99% loses 2 points, random pruning 10.
    assert!(close(lines[0].points[2].value.median, 0.96) && close(lines[1].points[2].value.median, 0.88));
    // The dense trial is the reference only, though its parameters say final_sparsity 0.9.
    assert_eq!(references.len(), 1);
    assert_eq!(references[0].label, "dense");
    assert!(close(references[0].value.median, testdata::sparsity_acc("dense", 0.0, 0)));
    let (int8, int8_refs) = super::lines(&trials, TEST_ACC_INT8);
    assert!(close(int8[0].points[0].value.median, lines[0].points[0].value.median - 0.01));
    assert_eq!(int8_refs.len(), 1);
}

#[test]
fn the_median_is_not_the_mean_and_target_zero_stands_in_for_dense() {
    let mut rows = Vec::new();
    for (seed, acc) in [(0, 0.1), (1, 0.8), (2, 0.9)] {
        for target in [0.0, 0.9] {
            let mut t = testdata::sparsity_trials().remove(1);
            t.trial_id = format!("{target}-{seed}");
            t.params.insert("seed".into(), json!(seed));
            t.params.insert("final_sparsity".into(), json!(target));
            t.params.insert("scope".into(), json!(if seed == 2 { "layer" } else { "global" }));
            t.finals = [("test_acc".to_string(), acc - target / 10.0)].into_iter().collect();
            rows.push(t);
        }
    }
    let refs: Vec<&TrialRow> = rows.iter().collect();
    // No metric rows: the trials table's finals are the last values.
    let trials = trials(&refs, &[]);
    let (lines, references) = lines(&trials, TEST_ACC);
    // Scope varies, so it is part of the label.
    assert_eq!(
        lines.iter().map(|l| l.label.as_str()).collect::<Vec<_>>(),
        ["magnitude, gradual, global", "magnitude, gradual, per layer"]
    );
    assert_eq!(
        lines[0].points[1],
        SparsityPoint {
            target: 0.9,
            sparsity: 0.9,
            value: spread([0.1 - 0.9 / 10.0, 0.8 - 0.9 / 10.0].into_iter()).unwrap()
        }
    );
    assert_eq!(references.len(), 1);
    assert_eq!(references[0].value, Spread { median: 0.8, min: 0.1, max: 0.9, n: 3 });
    assert!(spread([f64::NAN].into_iter()).is_none());
}

#[test]
fn layer_bars_show_the_highest_target_per_layer_and_method() {
    let rows = testdata::sparsity_trials();
    let refs: Vec<&TrialRow> = rows.iter().collect();
    let trials = trials(&refs, &testdata::sparsity_metrics(&rows));
    let bars = layer_bars(&trials, "", "sp").expect("bars");
    assert_eq!(bars.series, ["magnitude, gradual", "random, one-shot"]);
    let groups: Vec<&str> = bars.groups.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(groups, ["layer0", "layer1", "layer2", "all prunable weights"]);
    let [first, _, last] = testdata::layer_sparsity("magnitude", 0.99);
    assert!(close(bars.groups[0].1[0].as_ref().unwrap().mean, 100.0 * first));
    assert!(close(bars.groups[2].1[0].as_ref().unwrap().mean, 100.0 * last));
    assert!(close(bars.groups[2].1[1].as_ref().unwrap().mean, 99.0));
    assert!(bars.title.contains("target 99%"), "{}", bars.title);
}

#[test]
fn names_sort_as_counted_and_fractions_print_as_percentages() {
    let mut names = vec!["fc", "conv10", "conv2", "conv0", "layer1.10", "layer1.9"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, ["conv0", "conv2", "conv10", "fc", "layer1.9", "layer1.10"]);
    assert_eq!(percent(0.0), "0%");
    assert_eq!(percent(0.9), "90%");
    assert_eq!(percent(0.995), "99.5%");
    assert_eq!(percent(0.9999), "99.99%");
}
