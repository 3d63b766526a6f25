//! The tree model: at every node, one linear classifier per child (a child node, or a label at a
//! leaf), trained one-vs-rest only on the training points that reach the node, i.e. carry a label
//! below it. Training runs in parallel over nodes and over the children of a node.

use crate::solver::{self, Loss, SolverParams};
use crate::sparse::Csr;
use crate::tree::{Node, Tree};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use sweep_spec::sample::SplitMix64;

/// A pruned sparse weight vector over global feature ids, and its bias.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classifier {
    pub indices: Vec<u32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

/// The classifiers of one node's children stored feature-major: for each feature any child
/// weighs, the (child, weight) pairs, found through an open-addressing hash table. A sparse query
/// then scores every child in one pass over its own few nonzeros, one table probe each (a binary
/// search over a big node's features costs a cache miss per step, which dominated inference at
/// Amazon-670K scale), instead of one pass per child over that child's weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeWeights {
    /// (feature, rank) slots, `EMPTY` keys free; a power-of-two length at least twice the features.
    table: Vec<(u32, u32)>,
    /// The feature of rank r has pairs `offsets[r]..offsets[r + 1]`.
    offsets: Vec<u32>,
    children: Vec<u32>,
    weights: Vec<f32>,
    biases: Vec<f32>,
}

const EMPTY: u32 = u32::MAX;

impl NodeWeights {
    pub fn from_classifiers(classifiers: &[Classifier]) -> NodeWeights {
        let mut triples: Vec<(u32, u32, f32)> = classifiers
            .iter()
            .enumerate()
            .flat_map(|(c, cl)| cl.indices.iter().zip(&cl.weights).map(move |(&j, &w)| (j, c as u32, w)))
            .collect();
        triples.sort_unstable_by_key(|&(j, c, _)| (j, c));
        let mut out = NodeWeights { biases: classifiers.iter().map(|c| c.bias).collect(), ..NodeWeights::default() };
        let mut features: Vec<u32> = Vec::new();
        for (j, c, w) in triples {
            if features.last() != Some(&j) {
                features.push(j);
                out.offsets.push(out.children.len() as u32);
            }
            out.children.push(c);
            out.weights.push(w);
        }
        out.offsets.push(out.children.len() as u32);
        if !features.is_empty() {
            out.table = vec![(EMPTY, 0); (2 * features.len()).next_power_of_two()];
            for (rank, &j) in features.iter().enumerate() {
                let mut slot = out.slot(j);
                while out.table[slot].0 != EMPTY {
                    slot = (slot + 1) & (out.table.len() - 1);
                }
                out.table[slot] = (j, rank as u32);
            }
        }
        out
    }

    /// Home slot of feature `j`: Fibonacci hashing on the table's bits.
    fn slot(&self, j: u32) -> usize {
        let bits = self.table.len().trailing_zeros();
        (j.wrapping_mul(0x9E37_79B1) as u64 >> (32 - bits)) as usize
    }

    /// The rank of feature `j`, if any child weighs it.
    fn rank(&self, j: u32) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let mut slot = self.slot(j);
        loop {
            match self.table[slot] {
                (EMPTY, _) => return None,
                (k, rank) if k == j => return Some(rank as usize),
                _ => slot = (slot + 1) & (self.table.len() - 1),
            }
        }
    }

    /// Every child's score w·x + b for a query.
    pub fn scores(&self, indices: &[u32], values: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.biases);
        for (&j, &v) in indices.iter().zip(values) {
            if let Some(r) = self.rank(j) {
                let (a, b) = (self.offsets[r] as usize, self.offsets[r + 1] as usize);
                for (&c, &w) in self.children[a..b].iter().zip(&self.weights[a..b]) {
                    out[c as usize] += v * w;
                }
            }
        }
    }

    /// Features any child weighs.
    pub fn features(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn weights(&self) -> usize {
        self.weights.len()
    }

    pub fn bytes(&self) -> usize {
        8 * self.table.len() + 4 * (self.offsets.len() + self.children.len() + self.weights.len() + self.biases.len())
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub tree: Tree,
    /// `nodes[node]` scores the node's children, in the order the tree lists them.
    pub nodes: Vec<NodeWeights>,
    pub loss: Loss,
    pub n_features: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    pub solver: SolverParams,
    pub prune_threshold: f32,
    pub seed: u64,
}

impl Model {
    /// Trains every node's classifiers on `x` (points × features, unit rows) and `y` (points × labels).
    pub fn train(tree: Tree, x: &Csr, y: &Csr, p: &TrainParams) -> Model {
        let node_points = points_per_node(&tree, y);
        // Biggest nodes first, handed out one at a time from a shared queue, so that no long node
        // starts last. A worker with nothing left to take helps with the classifiers of the nodes
        // still in training (each node trains its children in parallel).
        let mut order: Vec<usize> = (0..tree.nodes.len()).collect();
        order.sort_by_key(|&n| std::cmp::Reverse(node_points[n].len()));
        let next = AtomicUsize::new(0);
        let mut trained: Vec<(usize, NodeWeights)> = (0..rayon::current_num_threads())
            .into_par_iter()
            .flat_map_iter(|_| {
                std::iter::from_fn(|| {
                    let n = *order.get(next.fetch_add(1, Ordering::Relaxed))?;
                    Some((n, NodeWeights::from_classifiers(&train_node(&tree, n, &node_points, x, y, p))))
                })
            })
            .collect();
        trained.sort_by_key(|(n, _)| *n);
        Model { nodes: trained.into_iter().map(|(_, c)| c).collect(), tree, loss: p.solver.loss, n_features: x.n_cols }
    }

    /// Bytes of the tree and the weights as stored: per weighted feature of a node its id and
    /// offset, per weight its child and value, per child its bias (4 bytes each).
    pub fn bytes(&self) -> usize {
        self.tree.bytes() + self.nodes.iter().map(NodeWeights::bytes).sum::<usize>()
    }

    pub fn weights(&self) -> usize {
        self.nodes.iter().map(NodeWeights::weights).sum()
    }
}

/// For every node, the sorted ids of the training points that reach it: the root sees every
/// point (points without labels included, as negatives); any other node sees the points with a
/// label below it.
pub fn points_per_node(tree: &Tree, y: &Csr) -> Vec<Vec<u32>> {
    let paths = tree.paths(y.n_cols);
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); tree.nodes.len()];
    lists[0] = (0..y.rows() as u32).collect();
    for i in 0..y.rows() as u32 {
        for &l in y.row_indices(i as usize) {
            for &node in &paths[l as usize][1..] {
                let list = &mut lists[node as usize];
                // Points come in order, so a repeat can only be the last entry.
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
    }
    lists
}

fn train_node(tree: &Tree, n: usize, node_points: &[Vec<u32>], x: &Csr, y: &Csr, p: &TrainParams) -> Vec<Classifier> {
    let points = &node_points[n];
    let (local, features) = x.compact_rows(points);
    // positives[c][k]: does point points[k] belong to child c?
    let positives: Vec<Vec<bool>> = match &tree.nodes[n] {
        Node::Inner(children) => children
            .iter()
            .map(|&c| {
                let below = &node_points[c as usize];
                points.iter().map(|i| below.binary_search(i).is_ok()).collect()
            })
            .collect(),
        Node::Leaf(labels) => labels
            .iter()
            .map(|&l| points.iter().map(|&i| y.row_indices(i as usize).binary_search(&l).is_ok()).collect())
            .collect(),
    };
    let problem = solver::Problem::new(&local);
    let seed = SplitMix64::new(p.seed ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
    positives
        .par_iter()
        .enumerate()
        .map_init(
            || (vec![0f32; features.len()], solver::Scratch::default()),
            |(w, scratch), (c, pos)| {
                let bias = problem.train(pos, &p.solver, seed.wrapping_add(c as u64), w, scratch);
                let mut out = Classifier { bias, ..Classifier::default() };
                for (j, &v) in w.iter().enumerate() {
                    if v.abs() >= p.prune_threshold {
                        out.indices.push(features[j]);
                        out.weights.push(v);
                    }
                }
                out
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_major_scores_equal_per_classifier_dot_products() {
        let a = Classifier { indices: vec![1, 4, 9], weights: vec![0.5, -1.0, 2.0], bias: 0.25 };
        let b = Classifier { indices: vec![4, 7], weights: vec![3.0, 1.5], bias: -1.0 };
        let node = NodeWeights::from_classifiers(&[a, b]);
        assert_eq!((node.features(), node.weights()), (4, 5));
        assert_eq!(
            [1, 4, 7, 9, 0, 2, 12].map(|j| node.rank(j)),
            [Some(0), Some(1), Some(2), Some(3), None, None, None]
        );
        let mut out = Vec::new();
        node.scores(&[0, 4, 9, 12], &[10.0, 2.0, 1.0, 5.0], &mut out);
        // a: 0.25 + 2·(−1) + 1·2 = 0.25; b: −1 + 2·3 = 5.
        assert_eq!(out, vec![0.25, 5.0]);
        node.scores(&[], &[], &mut out);
        assert_eq!(out, vec![0.25, -1.0]);
    }

    #[test]
    fn each_node_sees_the_points_with_a_label_below_it() {
        let tree = Tree { nodes: vec![Node::Inner(vec![1, 2]), Node::Leaf(vec![0, 1]), Node::Leaf(vec![2])] };
        let mut y = Csr::empty(3);
        y.push_row(&[0, 1], &[1.0, 1.0]);
        y.push_row(&[2], &[1.0]);
        y.push_row(&[], &[]);
        y.push_row(&[1, 2], &[1.0, 1.0]);
        assert_eq!(points_per_node(&tree, &y), vec![vec![0, 1, 2, 3], vec![0, 3], vec![1, 3]]);
    }
}
