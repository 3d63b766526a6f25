//! Label noise as in Nakkiran et al. (2019): a fixed set of training labels, chosen by the seed, each
//! replaced by a different class. The draw matches the `mlp` workload's, so the same seed and
//! fraction corrupt the same positions whatever the data set.

use crate::rng::{Rng, Stream};
use tch::Tensor;

/// Replaces exactly round(fraction * n) labels, chosen by `seed`, each by a different class chosen
/// uniformly among the other `classes - 1`. Same seed -> same result. Panics on a fraction outside
/// [0, 1], or on noise asked of fewer than two classes: both are configuration errors the caller
/// validates first.
pub fn with_label_noise(labels: &Tensor, classes: i64, fraction: f64, seed: u64) -> Tensor {
    assert!((0.0..=1.0).contains(&fraction), "label noise fraction must lie in [0, 1], got {fraction}");
    let mut values = Vec::<i64>::try_from(&labels.to_kind(tch::Kind::Int64).flatten(0, -1))
        .expect("labels are an integer tensor on the CPU");
    let n = values.len();
    let flips = ((fraction * n as f64).round() as usize).min(n);
    if flips > 0 {
        assert!(classes >= 2, "label noise needs at least two classes, got {classes}");
    }
    let mut rng = Rng::new(seed, Stream::LabelNoise);
    let mut chosen: Vec<usize> = rng.permutation(n)[..flips].iter().map(|&i| i as usize).collect();
    // Shifts are drawn in index order, so the result does not depend on the permutation's order
    // beyond which positions it picked.
    chosen.sort_unstable();
    for i in chosen {
        let shift = 1 + rng.below(classes as u64 - 1) as i64;
        values[i] = (values[i] + shift).rem_euclid(classes);
    }
    Tensor::from_slice(&values).view(labels.size().as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: i64, classes: i64) -> Tensor {
        Tensor::arange(n, (tch::Kind::Int64, tch::Device::Cpu)).remainder(classes)
    }

    #[test]
    fn changes_exactly_the_rounded_count_to_other_classes() {
        let clean = labels(1000, 10);
        for (fraction, expected) in [(0.0, 0), (0.1, 100), (0.15, 150), (0.0125, 13), (0.00049, 0), (1.0, 1000)] {
            let noisy = with_label_noise(&clean, 10, fraction, 7);
            let changed = noisy.ne_tensor(&clean).sum(tch::Kind::Int64).int64_value(&[]);
            assert_eq!(changed, expected, "fraction {fraction}");
            let (lo, hi) = (noisy.min().int64_value(&[]), noisy.max().int64_value(&[]));
            assert!(lo >= 0 && hi < 10, "labels in range: {lo}..={hi}");
        }
    }

    #[test]
    fn deterministic_per_seed_and_spread_over_classes() {
        let clean = labels(500, 5);
        let a = with_label_noise(&clean, 5, 0.2, 3);
        assert!(a.equal(&with_label_noise(&clean, 5, 0.2, 3)));
        assert!(!a.equal(&with_label_noise(&clean, 5, 0.2, 4)));
        // Every other class is used as a replacement, not always the next one.
        let all = with_label_noise(&clean, 5, 1.0, 3);
        let shifts = (all - &clean).remainder(5);
        for s in 1..5 {
            let count = shifts.eq(s).sum(tch::Kind::Int64).int64_value(&[]);
            assert!((80..170).contains(&count), "shift {s} used {count} times of 500");
        }
        assert_eq!(shifts.eq(0).sum(tch::Kind::Int64).int64_value(&[]), 0);
    }
}
