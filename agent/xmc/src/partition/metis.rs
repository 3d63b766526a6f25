//! Graph partitioning of a label graph with METIS (the seed idea of this study): labels are
//! vertices, and an edge says two labels belong together, either because they share training
//! points (co-occurrence) or because their PIFA embeddings are close (k-NN). Each node's split
//! partitions the subgraph its labels induce into `k` parts of near-equal size, minimising the
//! weight of cut edges.

use crate::sparse::Csr;
use rayon::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelGraphKind {
    Cooccurrence,
    Knn,
}

impl LabelGraphKind {
    pub fn parse(name: &str) -> Option<LabelGraphKind> {
        match name {
            "cooccurrence" => Some(LabelGraphKind::Cooccurrence),
            "knn" => Some(LabelGraphKind::Knn),
            _ => None,
        }
    }
}

/// A symmetric weighted graph over all labels, without self-loops; `adj` rows are neighbours and
/// the values their integer weights (stored as f32 in the CSR, exact for the counts used).
#[derive(Debug, Clone)]
pub struct LabelGraph {
    pub adj: Csr,
}

impl LabelGraph {
    /// Edge weight = number of training points carrying both labels. `y` is points × labels.
    pub fn cooccurrence(y: &Csr) -> LabelGraph {
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for i in 0..y.rows() {
            let ls = y.row_indices(i);
            for &a in ls {
                for &b in ls {
                    if a != b {
                        pairs.push((a, b));
                    }
                }
            }
        }
        pairs.par_sort_unstable();
        let mut adj = Csr::empty(y.n_cols);
        let mut at = 0;
        for l in 0..y.n_cols as u32 {
            let (mut idx, mut val) = (Vec::new(), Vec::new());
            while at < pairs.len() && pairs[at].0 == l {
                let b = pairs[at].1;
                if idx.last() == Some(&b) {
                    *val.last_mut().unwrap() += 1.0;
                } else {
                    idx.push(b);
                    val.push(1.0);
                }
                at += 1;
            }
            adj.push_row(&idx, &val);
        }
        LabelGraph { adj }
    }

    /// Each label linked to its `k` most cosine-similar labels by PIFA embedding (exact search
    /// through an inverted index), weight 1 + ⌊100·cos⌋, made symmetric by keeping the larger weight.
    pub fn knn(z: &Csr, k: usize) -> LabelGraph {
        let z_t = z.transpose();
        let n = z.rows();
        let neighbours: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n], Vec::<u32>::new()),
                |(acc, touched), l| {
                    let (idx, val) = z.row(l);
                    for (&j, &v) in idx.iter().zip(val) {
                        let (ms, ws) = z_t.row(j as usize);
                        for (&m, &w) in ms.iter().zip(ws) {
                            if acc[m as usize] == 0.0 {
                                touched.push(m);
                            }
                            acc[m as usize] += v * w;
                        }
                    }
                    // A sum that passed through zero was recorded twice.
                    touched.sort_unstable();
                    touched.dedup();
                    let mut scored: Vec<(u32, f32)> =
                        touched.drain(..).map(|m| (m, std::mem::take(&mut acc[m as usize]))).collect();
                    scored.retain(|&(m, s)| m as usize != l && s > 0.0);
                    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    scored.truncate(k);
                    scored
                },
            )
            .collect();
        let mut edges: Vec<(u32, u32, f32)> = Vec::new();
        for (l, ns) in neighbours.iter().enumerate() {
            for &(m, s) in ns {
                let w = 1.0 + (100.0 * s).floor();
                edges.push((l as u32, m, w));
                edges.push((m, l as u32, w));
            }
        }
        edges.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut adj = Csr::empty(n);
        let mut at = 0;
        for l in 0..n as u32 {
            let (mut idx, mut val) = (Vec::new(), Vec::<f32>::new());
            while at < edges.len() && edges[at].0 == l {
                let (_, m, w) = edges[at];
                if idx.last() == Some(&m) {
                    let last = val.last_mut().unwrap();
                    *last = last.max(w);
                } else {
                    idx.push(m);
                    val.push(w);
                }
                at += 1;
            }
            adj.push_row(&idx, &val);
        }
        LabelGraph { adj }
    }

    pub fn edges(&self) -> usize {
        self.adj.nnz() / 2
    }
}

/// Partitions the subgraph induced by `labels` into `k` parts with METIS (k-way for k > 2,
/// recursive bisection for k = 2, as METIS recommends).
pub fn split(graph: &LabelGraph, labels: &[u32], k: usize, seed: u64) -> anyhow::Result<Vec<Vec<u32>>> {
    let local: HashMap<u32, i32> = labels.iter().enumerate().map(|(i, &l)| (l, i as i32)).collect();
    let mut xadj: Vec<metis::Idx> = Vec::with_capacity(labels.len() + 1);
    let mut adjncy: Vec<metis::Idx> = Vec::new();
    let mut adjwgt: Vec<metis::Idx> = Vec::new();
    xadj.push(0);
    for &l in labels {
        let (ns, ws) = graph.adj.row(l as usize);
        for (&m, &w) in ns.iter().zip(ws) {
            if let Some(&j) = local.get(&m) {
                adjncy.push(j);
                adjwgt.push(w as metis::Idx);
            }
        }
        xadj.push(adjncy.len() as metis::Idx);
    }
    let mut part = vec![0 as metis::Idx; labels.len()];
    let g = metis::Graph::new(1, k as metis::Idx, &xadj, &adjncy)
        .map_err(|e| anyhow::anyhow!("metis: invalid label graph: {e}"))?
        .set_adjwgt(&adjwgt)
        .set_option(metis::option::Seed((seed & 0x7fff_ffff) as metis::Idx));
    let result = if k == 2 { g.part_recursive(&mut part) } else { g.part_kway(&mut part) };
    result.map_err(|e| anyhow::anyhow!("metis: partitioning {} labels into {k} parts failed: {e}", labels.len()))?;
    let mut groups = vec![Vec::new(); k];
    for (i, &p) in part.iter().enumerate() {
        groups[p as usize].push(labels[i]);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::{assert_partition, clustered_embeddings};

    /// Labels 0-9 always appear together, as do 10-19; one point links the two groups.
    fn two_communities() -> Csr {
        let mut y = Csr::empty(20);
        for i in 0..40u32 {
            let base = if i % 2 == 0 { 0 } else { 10 };
            let ls: Vec<u32> = (0..3)
                .map(|d| base + (i / 2 + d * 3) % 10)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            y.push_row(&ls, &vec![1.0; ls.len()]);
        }
        y.push_row(&[9, 10], &[1.0, 1.0]);
        y
    }

    #[test]
    fn cooccurrence_graph_counts_shared_points() {
        let mut y = Csr::empty(3);
        y.push_row(&[0, 1], &[1.0, 1.0]);
        y.push_row(&[0, 1, 2], &[1.0; 3]);
        let g = LabelGraph::cooccurrence(&y);
        assert_eq!(g.adj.row(0), (&[1u32, 2][..], &[2.0f32, 1.0][..]));
        assert_eq!(g.adj.row(2), (&[0u32, 1][..], &[1.0f32, 1.0][..]));
        assert_eq!(g.edges(), 3);
    }

    #[test]
    fn metis_on_cooccurrence_finds_the_communities() {
        let g = LabelGraph::cooccurrence(&two_communities());
        let labels: Vec<u32> = (0..20).collect();
        let groups = split(&g, &labels, 2, 1).unwrap();
        assert_partition(&labels, &groups);
        let mut sets: Vec<Vec<u32>> = groups
            .into_iter()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        sets.sort();
        assert_eq!(sets, vec![(0..10).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>()]);
    }

    #[test]
    fn metis_on_knn_graph_follows_embeddings() {
        let z = clustered_embeddings(24, 3);
        let g = LabelGraph::knn(&z, 4);
        // Symmetric, no self-loops, neighbours from the same cluster.
        for l in 0..24u32 {
            let (ns, _) = g.adj.row(l as usize);
            assert!(!ns.contains(&l));
            assert!(ns.iter().all(|&m| m % 3 == l % 3), "label {l}: {ns:?}");
            assert!(ns.iter().all(|&m| g.adj.row(m as usize).0.contains(&l)));
        }
        let labels: Vec<u32> = (0..24).collect();
        let groups = split(&g, &labels, 3, 7).unwrap();
        assert_partition(&labels, &groups);
        for grp in &groups {
            assert_eq!(grp.len(), 8);
            assert!(grp.iter().all(|&l| l % 3 == grp[0] % 3), "{grp:?}");
        }
        // A subset induces its own subgraph.
        let sub: Vec<u32> = (0..12).collect();
        let groups = split(&g, &sub, 2, 7).unwrap();
        assert_partition(&sub, &groups);
    }
}
