//! The measures of the extreme-classification literature, over a ranking of labels per test point:
//! precision@k, nDCG@k, and propensity-scored precision@k (Jain, Prabhu and Varma 2016) with the
//! propensity model p_l = 1 / (1 + C·(N_l + B)^−A), C = (ln N − 1)(B + 1)^A, where N is the number
//! of training points and N_l those carrying label l. PSP@k is normalised by the PSP@k of the
//! best possible ranking, as the Extreme Classification Repository's tools report it. Points with
//! no label count, and score zero.

use crate::sparse::Csr;

/// k = 1..=5 for every measure; `p[k - 1]` is P@k.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub p: [f64; 5],
    pub ndcg: [f64; 5],
    pub psp: [f64; 5],
}

/// 1/p_l for every label, from its training frequency.
pub fn inverse_propensities(y_train: &Csr, a: f64, b: f64) -> Vec<f64> {
    let n = y_train.rows() as f64;
    let c = (n.ln() - 1.0) * (b + 1.0).powf(a);
    label_counts(y_train).iter().map(|&n_l| 1.0 + c * (n_l as f64 + b).powf(-a)).collect()
}

pub fn label_counts(y: &Csr) -> Vec<usize> {
    let mut counts = vec![0; y.n_cols];
    for &l in &y.indices {
        counts[l as usize] += 1;
    }
    counts
}

/// Scores `rankings[i]` (best first, at least 5 entries unless fewer labels exist) against the
/// true label sets `truth` (sorted rows).
pub fn evaluate(rankings: &[Vec<u32>], truth: &Csr, inv_prop: &[f64]) -> Ranked {
    let mut p = [0f64; 5];
    let mut ndcg = [0f64; 5];
    let (mut psp_num, mut psp_den) = ([0f64; 5], [0f64; 5]);
    let discount = |r: usize| 1.0 / ((r + 2) as f64).log2();
    for (i, ranking) in rankings.iter().enumerate() {
        let labels = truth.row_indices(i);
        let mut best: Vec<f64> = labels.iter().map(|&l| inv_prop[l as usize]).collect();
        best.sort_by(|a, b| b.total_cmp(a));
        let (mut hits, mut dcg, mut idcg, mut num, mut den) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for k in 0..5 {
            if let Some(&l) = ranking.get(k) {
                if labels.binary_search(&l).is_ok() {
                    hits += 1.0;
                    dcg += discount(k);
                    num += inv_prop[l as usize];
                }
            }
            if k < labels.len() {
                idcg += discount(k);
                den += best[k];
            }
            p[k] += hits / (k + 1) as f64;
            if idcg > 0.0 {
                ndcg[k] += dcg / idcg;
            }
            psp_num[k] += num;
            psp_den[k] += den;
        }
    }
    let n = rankings.len().max(1) as f64;
    let psp = std::array::from_fn(|k| if psp_den[k] > 0.0 { psp_num[k] / psp_den[k] } else { 0.0 });
    Ranked { p: p.map(|v| v / n), ndcg: ndcg.map(|v| v / n), psp }
}

/// Recall@k of the true (point, label) pairs, bucketed by the label's training frequency in
/// decades: `0` (unseen), `1_9`, `10_99`, `100_999`, ... Buckets with no test pair are left out.
pub fn recall_by_frequency(rankings: &[Vec<u32>], truth: &Csr, train_counts: &[usize], k: usize) -> Vec<(String, f64)> {
    let bucket = |c: usize| if c == 0 { 0 } else { 1 + (c as f64).log10().floor() as usize };
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (i, ranking) in rankings.iter().enumerate() {
        let top = &ranking[..k.min(ranking.len())];
        for &l in truth.row_indices(i) {
            let b = bucket(train_counts[l as usize]);
            if found.len() <= b {
                found.resize(b + 1, (0, 0));
            }
            found[b].1 += 1;
            found[b].0 += usize::from(top.contains(&l));
        }
    }
    found
        .iter()
        .enumerate()
        .filter(|(_, (_, total))| *total > 0)
        .map(|(b, &(hit, total))| {
            let name = match b {
                0 => "0".to_string(),
                _ => format!("{}_{}", 10usize.pow(b as u32 - 1), 10usize.pow(b as u32) - 1),
            };
            (name, hit as f64 / total as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Csr {
        let mut y = Csr::empty(5);
        y.push_row(&[1, 3], &[1.0, 1.0]);
        y.push_row(&[0], &[1.0]);
        y.push_row(&[], &[]);
        y
    }

    fn rankings() -> Vec<Vec<u32>> {
        vec![vec![3, 2, 1, 0, 4], vec![2, 0, 1, 3, 4], vec![0, 1, 2, 3, 4]]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn precision_and_ndcg_by_hand() {
        let r = evaluate(&rankings(), &truth(), &[1.0; 5]);
        // Hits: point 0 at ranks 1 and 3, point 1 at rank 2, point 2 has no labels.
        assert!(close(r.p[0], 1.0 / 3.0));
        assert!(close(r.p[2], (2.0 / 3.0 + 1.0 / 3.0) / 3.0));
        assert!(close(r.p[4], (2.0 / 5.0 + 1.0 / 5.0) / 3.0));
        assert!(close(r.ndcg[0], 1.0 / 3.0));
        // Point 0: DCG@3 = 1 + 1/log2(4) = 1.5, IDCG@3 = 1 + 1/log2(3); point 1: 1/log2(3) over 1.
        assert!(close(r.ndcg[2], 0.5168835142398817), "{}", r.ndcg[2]);
    }

    #[test]
    fn propensity_scored_precision_by_hand() {
        let inv = [1.0, 2.0, 3.0, 4.0, 5.0];
        let r = evaluate(&rankings(), &truth(), &inv);
        // @1: found 1/p of label 3 (4) at point 0; best possible 4 (point 0) + 1 (point 1).
        assert!(close(r.psp[0], 4.0 / 5.0));
        // @3: found 4 + 2 (point 0) + 1 (point 1), the best possible too.
        assert!(close(r.psp[2], 1.0));
        // Plain precision ignores propensities.
        assert_eq!(r.p, evaluate(&rankings(), &truth(), &[1.0; 5]).p);
    }

    #[test]
    fn propensities_follow_jain_et_al() {
        // 100 training points; label 0 on 10 of them, label 1 on none.
        let mut y = Csr::empty(2);
        for i in 0..100 {
            if i < 10 {
                y.push_row(&[0], &[1.0]);
            } else {
                y.push_row(&[], &[]);
            }
        }
        let inv = inverse_propensities(&y, 0.55, 1.5);
        // 1 + (ln 100 − 1)·2.5^0.55·(N_l + 1.5)^−0.55 for N_l = 10 and 0.
        assert!((inv[0] - 2.557431532775994).abs() < 1e-9, "{}", inv[0]);
        assert!((inv[1] - 5.774661450557821).abs() < 1e-9, "{}", inv[1]);
    }

    #[test]
    fn recall_is_bucketed_by_training_frequency() {
        // Label 1 seen 5 times, label 3 seen 20 times, label 0 never.
        let counts = [0, 5, 0, 20, 0];
        let got = recall_by_frequency(&rankings(), &truth(), &counts, 1);
        // Label 3 found at point 0 within the top 1; label 1 not; label 0 not.
        assert_eq!(got, vec![("0".into(), 0.0), ("1_9".into(), 0.0), ("10_99".into(), 1.0)]);
    }
}
