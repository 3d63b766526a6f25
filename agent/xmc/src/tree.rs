//! The label tree: built top-down by splitting a node's labels among `branching` children until a
//! node holds at most `max_leaf` labels or sits at depth `depth`. Leaves hold labels; the model
//! puts a classifier over the children of every node, a leaf's children being its labels.

use crate::partition::{self, Partitioner, SplitInputs};
use rayon::prelude::*;
use sweep_spec::sample::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeShape {
    pub branching: usize,
    pub max_leaf: usize,
    /// Nodes at this depth (the root is depth 0) are leaves whatever their size.
    pub depth: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Child node ids.
    Inner(Vec<u32>),
    /// Label ids.
    Leaf(Vec<u32>),
}

/// Nodes in breadth-first order; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// The recursive form while building, flattened afterwards.
enum Sub {
    Inner(Vec<Sub>),
    Leaf(Vec<u32>),
}

impl Tree {
    /// Builds the tree over labels `0..n_labels`.
    pub fn build(
        n_labels: usize,
        partitioner: Partitioner,
        inputs: &SplitInputs<'_>,
        shape: TreeShape,
        seed: u64,
    ) -> anyhow::Result<Tree> {
        let labels: Vec<u32> = (0..n_labels as u32).collect();
        // METIS keeps state per call that is not documented as thread-safe: its splits run one at a time.
        let parallel = partitioner != Partitioner::Metis;
        let root = build_sub(labels, 0, partitioner, inputs, shape, seed, parallel)?;
        Ok(flatten(root))
    }

    pub fn leaves(&self) -> impl Iterator<Item = &[u32]> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Leaf(ls) => Some(ls.as_slice()),
            Node::Inner(_) => None,
        })
    }

    /// For each label, the node ids from the root down to its leaf.
    pub fn paths(&self, n_labels: usize) -> Vec<Vec<u32>> {
        let mut parent = vec![u32::MAX; self.nodes.len()];
        for (id, n) in self.nodes.iter().enumerate() {
            if let Node::Inner(cs) = n {
                for &c in cs {
                    parent[c as usize] = id as u32;
                }
            }
        }
        let mut paths = vec![Vec::new(); n_labels];
        for (id, n) in self.nodes.iter().enumerate() {
            if let Node::Leaf(ls) = n {
                let mut path = vec![id as u32];
                let mut at = id;
                while parent[at] != u32::MAX {
                    at = parent[at] as usize;
                    path.push(at as u32);
                }
                path.reverse();
                for &l in ls {
                    paths[l as usize] = path.clone();
                }
            }
        }
        paths
    }

    pub fn bytes(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                std::mem::size_of::<Node>()
                    + 4 * match n {
                        Node::Inner(v) | Node::Leaf(v) => v.len(),
                    }
            })
            .sum()
    }
}

fn build_sub(
    labels: Vec<u32>,
    depth: usize,
    partitioner: Partitioner,
    inputs: &SplitInputs<'_>,
    shape: TreeShape,
    seed: u64,
    parallel: bool,
) -> anyhow::Result<Sub> {
    if labels.len() <= shape.max_leaf || depth >= shape.depth {
        return Ok(Sub::Leaf(labels));
    }
    let groups = partition::split(partitioner, inputs, &labels, shape.branching, seed)?;
    let child_seed = |c: usize| SplitMix64::new(seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();
    let build =
        |(c, g): (usize, Vec<u32>)| build_sub(g, depth + 1, partitioner, inputs, shape, child_seed(c), parallel);
    let children: anyhow::Result<Vec<Sub>> = if parallel {
        groups.into_par_iter().enumerate().map(build).collect()
    } else {
        groups.into_iter().enumerate().map(build).collect()
    };
    Ok(Sub::Inner(children?))
}

fn flatten(root: Sub) -> Tree {
    let mut nodes = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(sub) = queue.pop_front() {
        match sub {
            Sub::Leaf(ls) => nodes.push(Node::Leaf(ls)),
            Sub::Inner(children) => {
                // Children are numbered after every node already queued: breadth-first ids.
                let first = nodes.len() + 1 + queue.len();
                nodes.push(Node::Inner((first as u32..(first + children.len()) as u32).collect()));
                queue.extend(children);
            }
        }
    }
    Tree { nodes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::clustered_embeddings;
    use crate::partition::LabelGraph;

    fn check(tree: &Tree, n: usize, shape: TreeShape) {
        let mut seen = vec![0; n];
        for leaf in tree.leaves() {
            assert!(leaf.len() <= shape.max_leaf, "leaf of {} labels", leaf.len());
            leaf.iter().for_each(|&l| seen[l as usize] += 1);
        }
        assert!(seen.iter().all(|&c| c == 1), "every label in exactly one leaf");
        for n in &tree.nodes {
            if let Node::Inner(cs) = n {
                assert!((2..=shape.branching).contains(&cs.len()));
            }
        }
        let paths = tree.paths(n);
        assert!(paths.iter().all(|p| p[0] == 0 && p.len() <= shape.depth + 1));
    }

    #[test]
    fn every_partitioner_builds_a_valid_tree() {
        let n = 300;
        let z = clustered_embeddings(n, 12);
        let mut y = crate::sparse::Csr::empty(n);
        for l in 0..n as u32 {
            y.push_row(&[l, (l + 12) % n as u32], &[1.0, 1.0]);
        }
        let graphs = [LabelGraph::cooccurrence(&y), LabelGraph::knn(&z, 5)];
        for branching in [2, 3, 8] {
            let shape = TreeShape { branching, max_leaf: 10, depth: 20 };
            for p in Partitioner::NAMES.iter().map(|n| Partitioner::parse(n).unwrap()) {
                for g in &graphs {
                    let inputs = SplitInputs { embeddings: &z, graph: Some(g), cluster_iters: 10, cluster_eps: 1e-4 };
                    let tree = Tree::build(n, p, &inputs, shape, 3).unwrap();
                    check(&tree, n, shape);
                    if p == Partitioner::KMeansBalanced || p == Partitioner::Random {
                        // Balanced splits: leaf sizes differ by at most a factor of about two.
                        let sizes: Vec<usize> = tree.leaves().map(<[u32]>::len).collect();
                        let (lo, hi) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
                        assert!(hi <= 2 * lo + 1, "{p:?} b={branching}: leaf sizes {lo}..{hi}");
                    }
                }
            }
        }
    }

    #[test]
    fn depth_bound_makes_leaves() {
        let z = clustered_embeddings(64, 4);
        let inputs = SplitInputs { embeddings: &z, graph: None, cluster_iters: 5, cluster_eps: 1e-4 };
        let tree = Tree::build(64, Partitioner::Random, &inputs, TreeShape { branching: 2, max_leaf: 1, depth: 2 }, 0)
            .unwrap();
        assert_eq!(tree.leaves().count(), 4);
        assert!(tree.leaves().all(|l| l.len() == 16));
    }
}
