//! How a node's labels are split among its children: spherical k-means on PIFA embeddings
//! (balanced, as in Parabel and PECOS, or not, as in Bonsai), a random split (the baseline), or
//! METIS on a label graph. `tree` calls these recursively; each split only sees one node's labels.

pub mod kmeans;
pub mod metis;
pub mod random;

use crate::sparse::Csr;
pub use metis::{LabelGraph, LabelGraphKind};

/// The partitioners a trial can name (`params.partitioner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    KMeansBalanced,
    KMeans,
    Random,
    Metis,
}

impl Partitioner {
    pub const NAMES: &'static [&'static str] = &["kmeans_balanced", "kmeans", "random", "metis"];

    pub fn parse(name: &str) -> Option<Partitioner> {
        Some(match name {
            "kmeans_balanced" => Partitioner::KMeansBalanced,
            "kmeans" => Partitioner::KMeans,
            "random" => Partitioner::Random,
            "metis" => Partitioner::Metis,
            _ => return None,
        })
    }
}

/// What a split may look at: the PIFA embeddings and, for METIS, the label graph.
pub struct SplitInputs<'a> {
    pub embeddings: &'a Csr,
    pub graph: Option<&'a LabelGraph>,
    pub cluster_iters: usize,
    pub cluster_eps: f64,
}

/// Splits `labels` into at most `k` non-empty groups (fewer only when there are fewer labels).
/// A partitioner that leaves every label in one group (k-means on identical embeddings, METIS on
/// a degenerate graph) cannot make progress, so such a split falls back to a random even one.
pub fn split(
    partitioner: Partitioner,
    inputs: &SplitInputs<'_>,
    labels: &[u32],
    k: usize,
    seed: u64,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let k = k.min(labels.len());
    let groups = match partitioner {
        Partitioner::KMeansBalanced => {
            kmeans::spherical(inputs.embeddings, labels, k, true, inputs.cluster_iters, inputs.cluster_eps, seed)
        }
        Partitioner::KMeans => {
            kmeans::spherical(inputs.embeddings, labels, k, false, inputs.cluster_iters, inputs.cluster_eps, seed)
        }
        Partitioner::Random => random::split(labels, k, seed),
        Partitioner::Metis => {
            let graph = inputs.graph.ok_or_else(|| anyhow::anyhow!("metis: no label graph was built"))?;
            metis::split(graph, labels, k, seed)?
        }
    };
    let groups: Vec<Vec<u32>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
    if groups.len() < 2 && labels.len() >= 2 {
        return Ok(random::split(labels, k, seed));
    }
    Ok(groups)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `groups` partitions `labels`: every label exactly once.
    pub fn assert_partition(labels: &[u32], groups: &[Vec<u32>]) {
        let mut all: Vec<u32> = groups.iter().flatten().copied().collect();
        all.sort_unstable();
        let mut want = labels.to_vec();
        want.sort_unstable();
        assert_eq!(all, want);
    }

    /// Embeddings of `n` labels in `c` well-separated clusters: label l is near axis l % c.
    pub fn clustered_embeddings(n: usize, c: usize) -> Csr {
        let mut z = Csr::empty(c + n);
        for l in 0..n {
            let own = (c + l) as u32;
            z.push_row(&[(l % c) as u32, own], &[0.9, 0.1]);
        }
        z.normalize_rows();
        z
    }

    #[test]
    fn degenerate_splits_fall_back_to_random() {
        // Identical embeddings: unbalanced k-means has nothing to separate.
        let mut z = Csr::empty(2);
        for _ in 0..10 {
            z.push_row(&[0], &[1.0]);
        }
        let labels: Vec<u32> = (0..10).collect();
        let inputs = SplitInputs { embeddings: &z, graph: None, cluster_iters: 10, cluster_eps: 1e-4 };
        let groups = split(Partitioner::KMeans, &inputs, &labels, 2, 1).unwrap();
        assert_eq!(groups.len(), 2);
        assert_partition(&labels, &groups);
    }
}
