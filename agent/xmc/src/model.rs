//! The tree model: at every node, one linear classifier per child (a child node, or a label at a
//! leaf), trained one-vs-rest only on the training points that reach the node, i.e. carry a label
//! below it. Training runs in parallel over nodes and over the children of a node.

use crate::solver::{self, Loss, SolverParams};
use crate::sparse::Csr;
use crate::tree::{Node, Tree};
use rayon::prelude::*;
use sweep_spec::sample::SplitMix64;

/// A pruned sparse weight vector over global feature ids, and its bias.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classifier {
    pub indices: Vec<u32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Classifier {
    /// Score for a query held densely in `query` (zero where the query has no feature).
    pub fn score(&self, query: &[f32]) -> f32 {
        crate::sparse::dot_dense(&self.indices, &self.weights, query) + self.bias
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub tree: Tree,
    /// `classifiers[node][child]`, children in the order the tree lists them.
    pub classifiers: Vec<Vec<Classifier>>,
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
        // Biggest nodes first, so the long ones do not start last.
        let mut order: Vec<usize> = (0..tree.nodes.len()).collect();
        order.sort_by_key(|&n| std::cmp::Reverse(node_points[n].len()));
        let mut trained: Vec<(usize, Vec<Classifier>)> =
            order.into_par_iter().map(|n| (n, train_node(&tree, n, &node_points, x, y, p))).collect();
        trained.sort_by_key(|(n, _)| *n);
        Model {
            classifiers: trained.into_iter().map(|(_, c)| c).collect(),
            tree,
            loss: p.solver.loss,
            n_features: x.n_cols,
        }
    }

    /// Bytes of the tree and the pruned weights (4-byte index and 4-byte value per weight).
    pub fn bytes(&self) -> usize {
        self.tree.bytes()
            + self
                .classifiers
                .iter()
                .flatten()
                .map(|c| std::mem::size_of::<Classifier>() + 8 * c.indices.len())
                .sum::<usize>()
    }

    pub fn weights(&self) -> usize {
        self.classifiers.iter().flatten().map(|c| c.indices.len()).sum()
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

/// The node's points as a local matrix over only the features they use, so each classifier's
/// dense weight vector is as small as the node's vocabulary.
fn local_matrix(points: &[u32], x: &Csr) -> (Csr, Vec<u32>) {
    let mut used: Vec<u32> = points.iter().flat_map(|&i| x.row_indices(i as usize).iter().copied()).collect();
    used.sort_unstable();
    used.dedup();
    let mut local = Csr::empty(used.len());
    let mut idx = Vec::new();
    for &i in points {
        let (cols, vals) = x.row(i as usize);
        idx.clear();
        idx.extend(cols.iter().map(|j| used.binary_search(j).expect("feature collected above") as u32));
        local.push_row(&idx, vals);
    }
    (local, used)
}

fn train_node(tree: &Tree, n: usize, node_points: &[Vec<u32>], x: &Csr, y: &Csr, p: &TrainParams) -> Vec<Classifier> {
    let points = &node_points[n];
    let (local, features) = local_matrix(points, x);
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
    let seed = SplitMix64::new(p.seed ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
    positives
        .par_iter()
        .enumerate()
        .map_init(
            || (vec![0f32; features.len()], solver::Scratch::default()),
            |(w, scratch), (c, pos)| {
                let bias = solver::train(&local, pos, &p.solver, seed.wrapping_add(c as u64), w, scratch);
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
