//! PIFA label embeddings (Positive Instance Feature Aggregation, PECOS): z_l is the normalised sum
//! of the normalised feature vectors of the training points that carry label l. Labels with no
//! training point get an all-zero embedding.

use crate::sparse::Csr;
use rayon::prelude::*;

/// Labels × features embeddings; `x` must already have unit rows and `y_t` is the label × point
/// transpose of the label matrix.
pub fn embed(x: &Csr, y_t: &Csr) -> Csr {
    let n_labels = y_t.rows();
    let chunk = 256;
    let parts: Vec<Csr> = (0..n_labels.div_ceil(chunk))
        .into_par_iter()
        .map_init(
            || (vec![0f32; x.n_cols], Vec::<u32>::new()),
            |(acc, touched), c| {
                let mut out = Csr::empty(x.n_cols);
                for l in c * chunk..((c + 1) * chunk).min(n_labels) {
                    for &i in y_t.row_indices(l) {
                        let (idx, val) = x.row(i as usize);
                        for (&j, &v) in idx.iter().zip(val) {
                            if acc[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            acc[j as usize] += v;
                        }
                    }
                    touched.sort_unstable();
                    // A sum that passed through zero was recorded twice.
                    touched.dedup();
                    let vals: Vec<f32> = touched.iter().map(|&j| std::mem::take(&mut acc[j as usize])).collect();
                    let norm = vals.iter().map(|v| v * v).sum::<f32>().sqrt();
                    let vals: Vec<f32> = vals.iter().map(|v| if norm > 0.0 { v / norm } else { 0.0 }).collect();
                    out.push_row(touched, &vals);
                    touched.clear();
                }
                out
            },
        )
        .collect();
    let mut z = Csr::empty(x.n_cols);
    for p in parts {
        for r in 0..p.rows() {
            let (i, v) = p.row(r);
            z.push_row(i, v);
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_example() {
        // Points (already unit length): p0 = (0.6, 0.8, 0), p1 = (0, 0, 1), p2 = (1, 0, 0).
        let mut x = Csr::empty(3);
        x.push_row(&[0, 1], &[0.6, 0.8]);
        x.push_row(&[2], &[1.0]);
        x.push_row(&[0], &[1.0]);
        // Label 0 on p0 and p2; label 1 on p1; label 2 on none.
        let mut y = Csr::empty(3);
        y.push_row(&[0], &[1.0]);
        y.push_row(&[1], &[1.0]);
        y.push_row(&[0], &[1.0]);
        let z = embed(&x, &y.transpose());
        // z0 ∝ (1.6, 0.8, 0), |.| = sqrt(3.2).
        let n = 3.2f32.sqrt();
        let (i, v) = z.row(0);
        assert_eq!(i, &[0, 1]);
        assert!((v[0] - 1.6 / n).abs() < 1e-6 && (v[1] - 0.8 / n).abs() < 1e-6);
        assert_eq!(z.row(1), (&[2u32][..], &[1.0f32][..]));
        assert!(z.row(2).0.is_empty());
    }
}
