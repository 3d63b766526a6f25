//! Compressed sparse rows: the one matrix type of the crate. Feature matrices, label sets (values
//! ignored) and label embeddings are all `Csr`, so every loop over "the nonzeros of row i" reads alike.

use std::cell::RefCell;

/// A sparse matrix in CSR form with `u32` column indices and `f32` values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    pub n_cols: usize,
    /// Row `i` spans `indptr[i]..indptr[i + 1]` of `indices` and `data`; `indptr.len() == rows + 1`.
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    pub fn empty(n_cols: usize) -> Csr {
        Csr { n_cols, indptr: vec![0], indices: Vec::new(), data: Vec::new() }
    }

    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Appends a row; the caller keeps its indices below `n_cols`.
    pub fn push_row(&mut self, indices: &[u32], data: &[f32]) {
        debug_assert_eq!(indices.len(), data.len());
        self.indices.extend_from_slice(indices);
        self.data.extend_from_slice(data);
        self.indptr.push(self.indices.len());
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    pub fn row_indices(&self, i: usize) -> &[u32] {
        &self.indices[self.indptr[i]..self.indptr[i + 1]]
    }

    /// Scales every row to unit L2 norm; all-zero rows stay zero.
    pub fn normalize_rows(&mut self) {
        for i in 0..self.rows() {
            let (a, b) = (self.indptr[i], self.indptr[i + 1]);
            let norm = self.data[a..b].iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                self.data[a..b].iter_mut().for_each(|v| *v /= norm);
            }
        }
    }

    /// The transpose, with rows sorted by column of the original (a counting sort, O(nnz)).
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &j in &self.indices {
            counts[j as usize + 1] += 1;
        }
        for j in 0..self.n_cols {
            counts[j + 1] += counts[j];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for i in 0..self.rows() {
            let (cols, vals) = self.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                let at = next[j as usize];
                indices[at] = i as u32;
                data[at] = v;
                next[j as usize] += 1;
            }
        }
        Csr { n_cols: self.rows(), indptr, indices, data }
    }

    /// The rows `rows` (in that order) as a matrix over only the columns they use, and those
    /// columns' ids here, ascending: local column c is column `columns[c]` of `self`. A tree node's
    /// training points or labels, compacted so that its dense vectors (classifier weights,
    /// centroids) are as long as its own vocabulary. Ids map through a dense table per thread, one
    /// lookup per nonzero: every level of a tree passes over all the nonzeros, so sorting or
    /// searching them would cost too much.
    pub fn compact_rows(&self, rows: &[u32]) -> (Csr, Vec<u32>) {
        thread_local! {
            /// Column id here → local id; `UNSEEN` between calls.
            static LOCAL_ID: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        const UNSEEN: u32 = u32::MAX;
        LOCAL_ID.with_borrow_mut(|local_id| {
            local_id.resize(local_id.len().max(self.n_cols), UNSEEN);
            let mut columns = Vec::new();
            for &i in rows {
                for &j in self.row_indices(i as usize) {
                    if local_id[j as usize] == UNSEEN {
                        local_id[j as usize] = 0;
                        columns.push(j);
                    }
                }
            }
            columns.sort_unstable();
            for (rank, &j) in columns.iter().enumerate() {
                local_id[j as usize] = rank as u32;
            }
            let mut local = Csr::empty(columns.len());
            let nnz = rows.iter().map(|&i| self.row_indices(i as usize).len()).sum();
            local.indices.reserve(nnz);
            local.data.reserve(nnz);
            local.indptr.reserve(rows.len());
            for &i in rows {
                let (cols, vals) = self.row(i as usize);
                local.indices.extend(cols.iter().map(|&j| local_id[j as usize]));
                local.data.extend_from_slice(vals);
                local.indptr.push(local.indices.len());
            }
            for &j in &columns {
                local_id[j as usize] = UNSEEN;
            }
            (local, columns)
        })
    }

    /// Bytes held by the index and value arrays.
    pub fn bytes(&self) -> usize {
        self.indptr.len() * std::mem::size_of::<usize>() + self.indices.len() * 4 + self.data.len() * 4
    }
}

/// Dot product of a sparse row with a dense vector.
pub fn dot_dense(indices: &[u32], data: &[f32], dense: &[f32]) -> f32 {
    indices.iter().zip(data).map(|(&j, &v)| v * dense[j as usize]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_round_trips_compacts_and_normalizes() {
        let mut m = Csr::empty(3);
        m.push_row(&[0, 2], &[3.0, 4.0]);
        m.push_row(&[], &[]);
        m.push_row(&[1], &[2.0]);
        let t = m.transpose();
        assert_eq!(t.rows(), 3);
        assert_eq!(t.row(2), (&[0u32][..], &[4.0f32][..]));
        assert_eq!(t.transpose(), m);
        let (picked, columns) = m.compact_rows(&[2, 0, 2]);
        assert_eq!(columns, vec![0, 1, 2]);
        assert_eq!(picked.row(0), (&[1u32][..], &[2.0f32][..]));
        assert_eq!(picked.row(1), (&[0u32, 2][..], &[3.0f32, 4.0][..]));
        let (picked, columns) = m.compact_rows(&[1, 0]);
        assert_eq!((picked.n_cols, columns), (2, vec![0, 2]));
        assert_eq!(picked.row(0).0, &[] as &[u32]);
        assert_eq!(picked.row(1), (&[0u32, 1][..], &[3.0f32, 4.0][..]));
        m.normalize_rows();
        assert_eq!(m.row(0).1, &[0.6, 0.8]);
        assert_eq!(m.row(2).1, &[1.0]);
    }
}
