//! How the numeric tests compare two trainings so that they hold on any CPU.
//!
//! Two runs through different kernels (a fused group against its members alone, a captured step
//! against an eager one, another instruction set or thread count) differ by rounding at the first
//! step, and training amplifies that by amounts that depend on the CPU. Such runs are compared over
//! one optimizer step only, at [`ONE_STEP`]: that is where a wrong rate, label or slice shows, and
//! rounding cannot. Whole trajectories are compared only between runs on the same kernels (a
//! resumed run against the uninterrupted one, a group against the same group), at
//! [`SAME_KERNELS`]. Metrics are paired by name, so a metric missing on one side fails the test.

use std::collections::BTreeSet;
use sweep_spec::EpochRecord;

/// One fp32 forward, backward and optimizer step through two kernel paths agree to this, relative.
pub const ONE_STEP: f64 = 1e-5;

/// Two runs on the same kernels, one of them stopped and resumed, agree to this, relative.
pub const SAME_KERNELS: f64 = 1e-6;

/// Metrics that time the machine rather than measure learning.
pub const TIMINGS: [&str; 10] = [
    "epoch_seconds",
    "samples_per_second",
    "gpu_mem_peak_bytes",
    "sharpness_seconds",
    "seconds",
    "step_seconds",
    "seconds_to_target",
    "inference_ms_dense",
    "inference_ms_sparse",
    "inference_ms_smaller",
];

/// How one metric is compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Not compared (it is reported by one side only, or measures something else).
    Skip,
    /// Reported by both sides; the values are not compared (they follow from steps that went
    /// through different kernels).
    Present,
    /// Within this absolute difference.
    Within(f64),
}

/// Relative `tolerance` for continuous metrics (scaled by the larger of |want| and 1), and one
/// evaluated example's share for the rates of `examples` examples (`*_error`, `*_acc*`), whose
/// argmax may flip where two logits are within rounding of each other; `interpolated` exactly.
pub fn rounding(tolerance: f64, examples: usize) -> impl Fn(&str, f64) -> Check {
    move |name, want| {
        if name == "interpolated" {
            Check::Within(0.0)
        } else if name.contains("_error") || name.contains("_acc") {
            Check::Within(1.0 / examples as f64 + 1e-12)
        } else {
            Check::Within(tolerance * want.abs().max(1.0))
        }
    }
}

/// The same tolerance, relative, for every metric: for runs on the same kernels.
pub fn relative(tolerance: f64) -> impl Fn(&str, f64) -> Check {
    move |_, want| Check::Within(tolerance * want.abs().max(1.0))
}

/// Every metric reported by both sides and the learning rate the same: for the epochs after the
/// first step of runs through different kernels, whose schedule must still agree.
pub fn same_schedule(name: &str, _want: f64) -> Check {
    if name == "lr" {
        Check::Within(0.0)
    } else {
        Check::Present
    }
}

/// Asserts that `got` and `want` are at the same point (epoch, step) and report the same metrics,
/// timings aside, each within what `check(name, wanted value)` allows.
pub fn assert_same_metrics(what: &str, got: &EpochRecord, want: &EpochRecord, check: impl Fn(&str, f64) -> Check) {
    assert_eq!((got.epoch, got.step), (want.epoch, want.step), "{what}: reported at another point");
    let names: BTreeSet<&String> = got.metrics.keys().chain(want.metrics.keys()).collect();
    for name in names {
        if TIMINGS.contains(&name.as_str()) {
            continue;
        }
        let (g, w) = (got.metrics.get(name), want.metrics.get(name));
        let expected = w.or(g).copied().unwrap_or_default();
        let tolerance = match check(name, expected) {
            Check::Skip => continue,
            Check::Present => None,
            Check::Within(t) => Some(t),
        };
        let (Some(&g), Some(&w)) = (g, w) else {
            panic!("{what}, epoch {}: `{name}` is reported by one side only ({g:?} against {w:?})", want.epoch);
        };
        let Some(tolerance) = tolerance else {
            continue;
        };
        let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tolerance;
        assert!(same, "{what}, epoch {}: {name} {g}, expected {w} (within {tolerance:e})", want.epoch);
    }
}

/// [`assert_same_metrics`] for every record of two runs, which must report the same epochs.
pub fn assert_same_runs(what: &str, got: &[EpochRecord], want: &[EpochRecord], check: impl Fn(&str, f64) -> Check) {
    let epochs = |r: &[EpochRecord]| r.iter().map(|r| r.epoch).collect::<Vec<_>>();
    assert_eq!(epochs(got), epochs(want), "{what}: epochs reported");
    for (g, w) in got.iter().zip(want) {
        assert_same_metrics(what, g, w, &check);
    }
}

/// `check`, leaving out `fused_members`, which only a member of a fused group reports.
pub fn without_group_size(check: impl Fn(&str, f64) -> Check) -> impl Fn(&str, f64) -> Check {
    move |name, want| if name == "fused_members" { Check::Skip } else { check(name, want) }
}

/// A fused member's records against the same trial's alone, each epoch one optimizer step (a
/// training set of one batch): the first evaluation follows one step through different kernels
/// and agrees to rounding, rates within one of `examples`; later epochs went through more such
/// steps and must report the same metrics at the same learning rate only.
pub fn assert_member_trains_as_alone(what: &str, fused: &[EpochRecord], alone: &[EpochRecord], examples: usize) {
    let epochs = |r: &[EpochRecord]| r.iter().map(|r| r.epoch).collect::<Vec<_>>();
    assert_eq!(epochs(fused), epochs(alone), "{what}: epochs reported");
    assert_same_metrics(what, &fused[0], &alone[0], without_group_size(rounding(ONE_STEP, examples)));
    for (f, a) in fused.iter().zip(alone).skip(1) {
        assert_same_metrics(what, f, a, without_group_size(same_schedule));
    }
}

/// Asserts that two checkpoints (`crate::checkpoint`) hold the same variables and optimizer state,
/// tensor by tensor within `tolerance` relative distance, at the same position.
pub fn assert_checkpoints_agree(what: &str, got: &std::path::Path, want: &std::path::Path, tolerance: f64) {
    let meta = |dir: &std::path::Path| std::fs::read_to_string(dir.join("latest/meta.json")).unwrap();
    assert_eq!(meta(got), meta(want), "{what}: checkpoints at other positions");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let read = |dir: &std::path::Path| {
            let mut named = tch::Tensor::read_safetensors(dir.join("latest").join(file)).unwrap();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            named
        };
        let (g, w) = (read(got), read(want));
        let names = |t: &[(String, tch::Tensor)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&g), names(&w), "{what}: {file} holds other tensors");
        for ((name, a), (_, b)) in g.iter().zip(&w) {
            let distance = relative_distance(a, b);
            assert!(distance <= tolerance, "{what}: {file} {name} is {distance:e} from the other's");
        }
    }
}

/// Entries smaller than this, about a tenth of a weight at initialisation, count as zero in
/// [`relative_distance`]: a quantity that is zero in exact arithmetic (a bias ahead of BatchNorm,
/// started at zero, gets a gradient of pure rounding) has no relative precision, and two kernels
/// round it differently. A wrong rate or slice moves variables by far more than this allows.
pub const ZERO_SCALE: f64 = 0.1;

/// How far `a` is from `b`, relative to `b`: |a - b| / |b| as norms, where |b| is at least that of
/// a tensor of [`ZERO_SCALE`] entries.
pub fn relative_distance(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "tensors of other shapes");
    let (a, b) = (a.to_kind(tch::Kind::Double), b.to_kind(tch::Kind::Double));
    let floor = ZERO_SCALE * (b.numel() as f64).sqrt();
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[]).max(floor).max(f64::MIN_POSITIVE)
}

/// One libtorch intra-op thread until dropped, then the count there was before, also when the test
/// fails. For the tests that rerun a shipped study: its steps are too small to split, and a second
/// thread only spin-waits against the tests running beside it (several times slower on 2 cores).
/// Set for the calling thread and the tests that start after it, hence put back.
pub struct OneThread(i32);

impl OneThread {
    pub fn new() -> OneThread {
        let threads = tch::get_num_threads();
        tch::set_num_threads(1);
        OneThread(threads)
    }
}

impl Drop for OneThread {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(metrics: &[(&str, f64)]) -> EpochRecord {
        EpochRecord { epoch: 1, step: Some(3), metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
    }

    #[test]
    fn metrics_are_paired_by_name_and_a_missing_one_fails() {
        let a = record(&[("test_loss", 2.0), ("train_loss", 1.0), ("epoch_seconds", 3.0)]);
        let b = record(&[("train_loss", 1.0), ("test_loss", 2.0 + 1e-7)]);
        assert_same_metrics("same", &a, &b, rounding(ONE_STEP, 64));
        let missing = record(&[("train_loss", 1.0)]);
        let err = std::panic::catch_unwind(|| assert_same_metrics("m", &a, &missing, rounding(ONE_STEP, 64)));
        let message = crate::error::panic_message(err.unwrap_err());
        assert!(message.contains("`test_loss` is reported by one side only"), "{message}");
        // A skipped metric may be missing.
        assert_same_metrics("skip", &a, &missing, |n, w| {
            if n == "test_loss" {
                Check::Skip
            } else {
                rounding(ONE_STEP, 1)(n, w)
            }
        });
    }

    #[test]
    fn distances_are_relative_above_the_zero_scale() {
        let t = |v: &[f64]| tch::Tensor::from_slice(v);
        assert!((relative_distance(&t(&[3.0, 4.0]), &t(&[3.0, 4.0 + 5e-3])) - 1e-3).abs() < 1e-6);
        // Rounding noise around zero is measured against the zero scale, not against itself.
        assert!(relative_distance(&t(&[1e-8, -2e-8]), &t(&[-1e-8, 1e-8])) < 1e-5);
        assert!(relative_distance(&t(&[1e-2, 0.0]), &t(&[0.0, 0.0])) > 1e-2);
    }

    #[test]
    fn losses_are_relative_and_rates_allow_one_example() {
        let check = rounding(1e-5, 64);
        assert_eq!(check("test_loss", 200.0), Check::Within(200.0 * 1e-5));
        assert_eq!(check("test_loss", 0.01), Check::Within(1e-5));
        assert_eq!(check("test_error", 0.5), Check::Within(1.0 / 64.0 + 1e-12));
        assert_eq!(check("class_acc/3", 0.5), Check::Within(1.0 / 64.0 + 1e-12));
        let off = std::panic::catch_unwind(|| {
            assert_same_metrics(
                "x",
                &record(&[("test_error", 0.5)]),
                &record(&[("test_error", 0.5 + 2.0 / 64.0)]),
                check,
            )
        });
        assert!(off.is_err(), "two examples' worth is more than rounding");
    }
}
