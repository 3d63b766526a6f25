//! Inference by beam search down the tree: a path's score is the sum of the log-probabilities of
//! its classifiers; at each level only the `beam` best nodes are expanded. A label's score is its
//! leaf path's score plus its own classifier's. An ensemble of trees scores a label by the mean
//! over the trees of its path probability, a tree whose beam missed the label counting 0.

use crate::model::Model;
use crate::tree::Node;

/// The `top` best labels for one query (`indices` sorted, `values`), best first, with their
/// log-probabilities.
pub fn predict(model: &Model, indices: &[u32], values: &[f32], beam: usize, top: usize) -> Vec<(u32, f32)> {
    let mut labels = candidates(model, indices, values, beam);
    keep_best(&mut labels, top);
    sort_best_first(&mut labels);
    labels
}

/// The `top` best labels of an ensemble, best first, each with the log of its mean probability
/// over the trees. Every label of a leaf a tree's beam reached takes part, not only that tree's
/// own top labels, so a label ranked second by every tree is not lost to labels that a single tree
/// ranks first. The mean is taken in log space (log-sum-exp): deep paths have log-probabilities
/// far below what `exp` in f32 can represent, and underflowing them all to 0 would rank the
/// points the trees find hardest by label id.
pub fn predict_ensemble(models: &[Model], indices: &[u32], values: &[f32], beam: usize, top: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = models.iter().flat_map(|m| candidates(m, indices, values, beam)).collect();
    all.sort_unstable_by_key(|&(label, _)| label);
    let log_trees = (models.len() as f32).ln();
    let mut labels: Vec<(u32, f32)> = all
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            let max = run.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = run.iter().map(|p| (p.1 - max).exp()).sum();
            (run[0].0, max + sum.ln() - log_trees)
        })
        .collect();
    keep_best(&mut labels, top);
    sort_best_first(&mut labels);
    labels
}

/// Every label of the leaves the beam reaches, with its path's log-probability.
fn candidates(model: &Model, indices: &[u32], values: &[f32], beam: usize) -> Vec<(u32, f32)> {
    let mut raw: Vec<f32> = Vec::new();
    let mut frontier: Vec<(u32, f32)> = vec![(0, 0.0)];
    let mut labels: Vec<(u32, f32)> = Vec::new();
    while !frontier.is_empty() {
        let mut next: Vec<(u32, f32)> = Vec::new();
        for &(node, path) in &frontier {
            model.nodes[node as usize].scores(indices, values, &mut raw);
            let scores = raw.iter().map(|&s| path + model.loss.log_prob(s));
            match &model.tree.nodes[node as usize] {
                Node::Inner(children) => next.extend(children.iter().copied().zip(scores)),
                Node::Leaf(ls) => labels.extend(ls.iter().copied().zip(scores)),
            }
        }
        keep_best(&mut next, beam);
        frontier = next;
    }
    labels
}

fn sort_best_first(items: &mut [(u32, f32)]) {
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Keeps the `k` highest-scoring entries (ties to the lower id), in no particular order.
fn keep_best(items: &mut Vec<(u32, f32)>, k: usize) {
    if items.len() > k {
        items.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        items.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Classifier, NodeWeights};
    use crate::solver::Loss;
    use crate::tree::Tree;

    /// A constant classifier: bias only.
    fn constant(score: f32) -> Classifier {
        Classifier { bias: score, ..Classifier::default() }
    }

    /// Root with two leaves; leaf 1 holds labels 0, 1, leaf 2 holds labels 2, 3. Logistic log-probs.
    fn model(root: [f32; 2], leaf1: [f32; 2], leaf2: [f32; 2]) -> Model {
        model_over([0, 1], [2, 3], root, leaf1, leaf2)
    }

    /// The same shape over other labels: leaf 1 holds `labels1`, leaf 2 `labels2`.
    fn model_over(labels1: [u32; 2], labels2: [u32; 2], root: [f32; 2], leaf1: [f32; 2], leaf2: [f32; 2]) -> Model {
        let tree =
            Tree { nodes: vec![Node::Inner(vec![1, 2]), Node::Leaf(labels1.to_vec()), Node::Leaf(labels2.to_vec())] };
        let nodes = [root, leaf1, leaf2]
            .iter()
            .map(|scores| NodeWeights::from_classifiers(&scores.iter().map(|&s| constant(s)).collect::<Vec<_>>()))
            .collect();
        Model { tree, nodes, loss: Loss::Logistic, n_features: 1 }
    }

    #[test]
    fn ranks_labels_by_path_probability() {
        let m = model([2.0, -1.0], [0.0, 3.0], [5.0, -5.0]);
        let lp = |s: f32| Loss::Logistic.log_prob(s);
        let got = predict(&m, &[], &[], 2, 4);
        let ids: Vec<u32> = got.iter().map(|p| p.0).collect();
        // Path scores: 0: lp(2)+lp(0), 1: lp(2)+lp(3), 2: lp(-1)+lp(5), 3: lp(-1)+lp(-5).
        let mut want =
            [(0u32, lp(2.0) + lp(0.0)), (1, lp(2.0) + lp(3.0)), (2, lp(-1.0) + lp(5.0)), (3, lp(-1.0) + lp(-5.0))];
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(ids, want.iter().map(|p| p.0).collect::<Vec<_>>());
        assert!((got[0].1 - want[0].1).abs() < 1e-6);
    }

    #[test]
    fn a_narrow_beam_drops_the_weaker_subtree() {
        let m = model([2.0, -1.0], [0.0, 3.0], [5.0, 5.0]);
        let got = predict(&m, &[], &[], 1, 4);
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(predict(&m, &[], &[], 2, 4).len(), 4);
    }

    #[test]
    fn an_ensemble_of_one_ranks_and_scores_as_its_tree() {
        let m = model([2.0, -1.0], [0.0, 3.0], [5.0, -5.0]);
        for beam in [1, 2] {
            assert_eq!(predict_ensemble(std::slice::from_ref(&m), &[], &[], beam, 4), predict(&m, &[], &[], beam, 4));
        }
    }

    #[test]
    fn an_ensemble_averages_probabilities_and_a_missed_label_counts_zero() {
        let lp = |s: f32| Loss::Logistic.log_prob(s);
        // With beam 1 each tree reaches only its first leaf. Tree a: labels 0 and 1 there, label 0
        // far ahead. Tree b: labels 1 and 2 there; label 0 sits in the leaf its beam drops.
        let a = model_over([0, 1], [2, 3], [3.0, -3.0], [6.0, 1.0], [0.0, 0.0]);
        let b = model_over([1, 2], [0, 3], [3.0, -3.0], [1.0, -6.0], [9.0, 0.0]);
        let got = predict_ensemble(&[a, b], &[], &[], 1, 3);
        let p0 = (lp(3.0) + lp(6.0)).exp() / 2.0;
        let p1 = (lp(3.0) + lp(1.0)).exp();
        let p2 = (lp(3.0) + lp(-6.0)).exp() / 2.0;
        assert!(p1 > p0 && p0 > p2, "the test's premise: {p1} > {p0} > {p2}");
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 0, 2]);
        for ((_, score), want) in got.iter().zip([p1, p0, p2]) {
            assert!((score - want.ln()).abs() < 1e-5, "{score} vs {}", want.ln());
        }
    }

    #[test]
    fn an_ensemble_keeps_the_order_of_probabilities_too_small_for_f32() {
        // Squared hinge: path log-probabilities −(1 + 13)² = −196 for label 1 and −196 − 9 for
        // label 0. exp of either is 0 in f32, which would tie the two labels and rank them by id;
        // the mean in log space keeps label 1 ahead.
        let mut m = model([-13.0, -20.0], [-2.0, 1.0], [0.0, 0.0]);
        m.loss = Loss::SquaredHinge;
        assert_eq!(((-196f32).exp(), (-205f32).exp()), (0.0, 0.0), "the test's premise");
        let got = predict_ensemble(&[m.clone(), m], &[], &[], 1, 2);
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 0]);
        assert!((got[0].1 + 196.0).abs() < 1e-3 && (got[1].1 + 205.0).abs() < 1e-3, "{got:?}");
    }
}
