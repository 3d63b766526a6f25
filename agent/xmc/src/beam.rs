//! Inference by beam search down the tree: a path's score is the sum of the log-probabilities of
//! its classifiers; at each level only the `beam` best nodes are expanded. A label's score is its
//! leaf path's score plus its own classifier's.

use crate::model::Model;
use crate::tree::Node;

/// The `top` best labels for one query (`indices` sorted, `values`), best first.
pub fn predict(model: &Model, indices: &[u32], values: &[f32], beam: usize, top: usize) -> Vec<(u32, f32)> {
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
    keep_best(&mut labels, top);
    labels.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    labels
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
        let tree = Tree { nodes: vec![Node::Inner(vec![1, 2]), Node::Leaf(vec![0, 1]), Node::Leaf(vec![2, 3])] };
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
}
