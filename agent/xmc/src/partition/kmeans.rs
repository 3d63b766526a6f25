//! Spherical k-means on unit-length label embeddings: similarity is the dot product and a centroid
//! is the normalised mean of its members. Balanced mode caps every cluster at ⌈n/k⌉ labels and fills
//! them greedily, most decided labels first; for k = 2 that is Parabel's split at the median of
//! sim(c1) − sim(c2). Unbalanced mode (Bonsai) assigns each label to its nearest centroid.

use crate::sparse::Csr;
use rayon::prelude::*;
use sweep_spec::sample::SplitMix64;

/// Splits `labels` (rows of `z`) into `k` clusters; some may be empty in unbalanced mode.
/// Stops after `iters` iterations, when no label moves, or when the mean similarity of labels to
/// their centroids improves by less than `eps` (Parabel's criterion).
pub fn spherical(
    z: &Csr,
    labels: &[u32],
    k: usize,
    balanced: bool,
    iters: usize,
    eps: f64,
    seed: u64,
) -> Vec<Vec<u32>> {
    let n = labels.len();
    let mut rng = SplitMix64::new(seed);
    // The node's labels over their own features: centroids as long as the node's vocabulary.
    let (z, _) = z.compact_rows(labels);
    // Feature-major centroids (c[j * k + c]) so one label's k similarities are one pass over its nonzeros.
    let mut centroids = vec![0f32; z.n_cols * k];
    // Initial centroids: k distinct members, by a partial shuffle.
    let mut order: Vec<usize> = (0..n).collect();
    for c in 0..k {
        let pick = c + (rng.next_u64() % (n - c) as u64) as usize;
        order.swap(c, pick);
        let (idx, val) = z.row(order[c]);
        for (&j, &v) in idx.iter().zip(val) {
            centroids[j as usize * k + c] = v;
        }
    }
    let mut assign = vec![usize::MAX; n];
    let mut sims = vec![0f32; n * k];
    let mut objective = f64::NEG_INFINITY;
    for _ in 0..iters.max(1) {
        sims.par_chunks_mut(k).enumerate().for_each(|(i, s)| {
            s.iter_mut().for_each(|v| *v = 0.0);
            let (idx, val) = z.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                let row = &centroids[j as usize * k..(j as usize + 1) * k];
                s.iter_mut().zip(row).for_each(|(a, &c)| *a += v * c);
            }
        });
        let next = if balanced { assign_balanced(&sims, k) } else { assign_nearest(&sims, k) };
        let changed = next != assign;
        assign = next;
        let mean_sim = assign.iter().enumerate().map(|(i, &c)| sims[i * k + c] as f64).sum::<f64>() / n as f64;
        let improved = mean_sim - objective >= eps;
        objective = mean_sim;
        if !changed || !improved {
            break;
        }
        centroids.iter_mut().for_each(|c| *c = 0.0);
        for (i, &c) in assign.iter().enumerate() {
            let (idx, val) = z.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                centroids[j as usize * k + c] += v;
            }
        }
        let mut norms = vec![0f32; k];
        for row in centroids.chunks(k) {
            norms.iter_mut().zip(row).for_each(|(n, &c)| *n += c * c);
        }
        norms.iter_mut().for_each(|n| *n = if *n > 0.0 { 1.0 / n.sqrt() } else { 0.0 });
        for row in centroids.chunks_mut(k) {
            row.iter_mut().zip(&norms).for_each(|(c, &s)| *c *= s);
        }
    }
    let mut groups = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate() {
        groups[assign[i]].push(l);
    }
    groups
}

/// Nearest centroid; exact ties (labels with identical similarities) rotate over the tied
/// clusters by label position instead of all going to the first, which would peel one label per level.
fn assign_nearest(sims: &[f32], k: usize) -> Vec<usize> {
    sims.chunks(k)
        .enumerate()
        .map(|(i, s)| {
            let mut best = i % k;
            for c in (0..k).map(|d| (i + d) % k) {
                if s[c] > s[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// Capacity ⌈n/k⌉ per cluster (the first n mod k clusters one more than the rest); labels with the
/// largest margin between their best and second-best centroid choose first.
fn assign_balanced(sims: &[f32], k: usize) -> Vec<usize> {
    let n = sims.len() / k;
    let mut capacity: Vec<usize> = (0..k).map(|c| n / k + usize::from(c < n % k)).collect();
    // Each label's clusters from most to least similar, ties to the lower index.
    let mut prefs: Vec<usize> = (0..n * k).map(|at| at % k).collect();
    prefs.par_chunks_mut(k).zip(sims.par_chunks(k)).for_each(|(p, s)| {
        p.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
    });
    let margins: Vec<f32> =
        prefs.chunks(k).zip(sims.chunks(k)).map(|(p, s)| s[p[0]] - if k > 1 { s[p[1]] } else { 0.0 }).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by(|&a, &b| margins[b].total_cmp(&margins[a]).then(a.cmp(&b)));
    let mut assign = vec![0; n];
    for i in order {
        let c = *prefs[i * k..(i + 1) * k].iter().find(|&&c| capacity[c] > 0).expect("capacities sum to n");
        capacity[c] -= 1;
        assign[i] = c;
    }
    assign
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::{assert_partition, clustered_embeddings};

    #[test]
    fn balanced_two_means_halves_and_separates() {
        let z = clustered_embeddings(40, 2);
        let labels: Vec<u32> = (0..40).collect();
        let groups = spherical(&z, &labels, 2, true, 20, 1e-4, 5);
        assert_partition(&labels, &groups);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 20]);
        for g in &groups {
            assert!(g.iter().all(|&l| l % 2 == g[0] % 2), "clusters follow the embedding: {g:?}");
        }
    }

    #[test]
    fn balanced_k_means_caps_sizes_unbalanced_follows_data() {
        // Four clusters of unequal size: 30 labels near axis 0, 10 near each of axes 1-3.
        let mut z = Csr::empty(70);
        for l in 0..60u32 {
            let axis = if l < 30 { 0 } else { 1 + (l - 30) / 10 };
            z.push_row(&[axis, 4 + l], &[0.95, 0.05]);
        }
        z.normalize_rows();
        let labels: Vec<u32> = (0..60).collect();
        let balanced = spherical(&z, &labels, 4, true, 20, 1e-4, 2);
        assert_partition(&labels, &balanced);
        assert!(balanced.iter().all(|g| g.len() == 15), "{:?}", balanced.iter().map(Vec::len).collect::<Vec<_>>());
        let free = spherical(&z, &labels, 4, false, 20, 1e-4, 2);
        assert_partition(&labels, &free);
        assert!(free.iter().map(Vec::len).max().unwrap() > 15, "unbalanced k-means keeps the big cluster bigger");
    }

    #[test]
    fn margin_order_matches_parabel_median_split() {
        // sim(c0) − sim(c1) for six labels; the three largest differences go to c0.
        let sims = [0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.4, 0.5, 0.6, 0.1, 0.5, 0.6];
        assert_eq!(assign_balanced(&sims, 2), vec![0, 1, 0, 1, 0, 1]);
    }
}
