//! Packing trials that need a share of one GPU (`[resources] gpu_share`): the one rule the
//! coordinator follows when it chooses a GPU for a shared trial, and the agent when it places one.
//! Each GPU is described by the share of it not given to trials yet: 1 when nothing runs on it.

/// Shares are sums of fractions such as 0.1: a little slack keeps ten of them on one GPU.
const SLACK: f64 = 1e-9;

/// Whether nothing runs on a GPU with `left` of it not given to trials.
pub fn is_free(left: f64) -> bool {
    left >= 1.0 - SLACK
}

/// Whether a GPU with `left` of it not given to trials can take `share` more.
pub fn fits(left: f64, share: f64) -> bool {
    left + SLACK >= share
}

/// Best fit: the index of the fullest GPU (least `left`) that can take `share` and passes `also`,
/// the lowest index among equals; so shared trials pack onto few GPUs and leave whole ones free.
pub fn fullest_fitting(left: impl IntoIterator<Item = f64>, share: f64, also: impl Fn(usize) -> bool) -> Option<usize> {
    left.into_iter()
        .enumerate()
        .filter(|&(i, l)| fits(l, share) && also(i))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fullest_gpu_that_fits_wins_and_ties_go_to_the_lowest_index() {
        assert_eq!(fullest_fitting([1.0, 0.5, 0.25, 0.5], 0.5, |_| true), Some(1));
        assert_eq!(fullest_fitting([1.0, 0.5, 0.25, 0.5], 0.5, |i| i != 1), Some(3));
        assert_eq!(fullest_fitting([0.25, 0.0], 0.5, |_| true), None);
        // A rounding error below the share still fits; a real shortfall does not.
        assert!(fits(0.1 - 1e-12, 0.1) && !fits(0.09, 0.1));
        // Ten tenths fit one GPU, taken one after another.
        let left = (0..10).try_fold(1.0, |l: f64, _| fits(l, 0.1).then_some(l - 0.1));
        assert!(left.is_some_and(|l| !fits(l, 0.1)), "{left:?}");
        assert!(is_free(1.0) && !is_free(0.75));
    }
}
