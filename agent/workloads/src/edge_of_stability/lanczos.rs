//! The top eigenvalues of a symmetric operator known only through its products with vectors (a
//! Hessian), by Lanczos with full reorthogonalisation. Each iteration costs one product; the small
//! tridiagonal problem is solved in f64 on the host after every iteration, and the run stops once
//! each wanted Ritz pair's residual bound |beta_m * s_mi| is below `tol` times its eigenvalue, or
//! after `max_iters` products.

use tch::{Device, Kind, Tensor};

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How many of the largest eigenvalues.
    pub k: usize,
    /// Operator products at most.
    pub max_iters: usize,
    /// Relative residual bound at which a Ritz pair counts as converged.
    pub tol: f64,
}

/// The largest eigenvalues found, in decreasing order, with their unit eigenvectors.
#[derive(Debug)]
pub struct Eigenpairs {
    pub values: Vec<f64>,
    pub vectors: Vec<Tensor>,
    /// Operator products it took.
    pub iterations: usize,
}

/// The `settings.k` largest eigenpairs of the symmetric operator `op` on flat vectors shaped like
/// `start`, starting from `start` (a previous top eigenvector is a good start). `fresh` draws a
/// random vector when the start is zero or when the Krylov space becomes invariant before enough
/// eigenvalues are found. Fewer than k come back only when the operator's dimension is below k.
pub fn top_eigenpairs(
    op: &mut dyn FnMut(&Tensor) -> Tensor,
    start: &Tensor,
    settings: Settings,
    fresh: &mut dyn FnMut() -> Tensor,
) -> Eigenpairs {
    let dim = start.numel();
    let k = settings.k.clamp(1, dim.max(1));
    let max_iters = settings.max_iters.max(k).min(dim);
    let mut basis: Vec<Tensor> = Vec::with_capacity(max_iters);
    let (mut alpha, mut beta) = (Vec::<f64>::new(), Vec::<f64>::new());
    let mut next = unit_or_fresh(start, &basis, fresh);
    loop {
        let q = next;
        let mut w = op(&q);
        alpha.push(dot(&w, &q));
        basis.push(q);
        // Twice is enough (Kahan's "twice is enough"): the basis stays orthogonal to working precision.
        for _ in 0..2 {
            orthogonalise(&mut w, &basis);
        }
        let residual = norm(&w);
        let (theta, s) = tridiagonal_eigen(&alpha, &beta);
        let m = alpha.len();
        let scale = theta.iter().fold(0f64, |a, t| a.max(t.abs())).max(f64::MIN_POSITIVE);
        let converged = m >= k
            && (0..k)
                .all(|i| (residual * s[(m - 1) * m + i]).abs() <= settings.tol * theta[i].abs().max(1e-12 * scale));
        if converged || m >= max_iters {
            return ritz_pairs(&theta, &s, &basis, k, m);
        }
        if residual <= 1e-10 * scale {
            // The space found is invariant: its Ritz values are exact. Go on in a fresh direction.
            beta.push(0.0);
            next = unit_or_fresh(&Tensor::zeros_like(&w), &basis, fresh);
        } else {
            beta.push(residual);
            next = w / residual;
        }
    }
}

/// `v` made a unit vector, or, when it is (numerically) zero or inside the basis, a fresh random
/// direction orthogonal to the basis.
fn unit_or_fresh(v: &Tensor, basis: &[Tensor], fresh: &mut dyn FnMut() -> Tensor) -> Tensor {
    let mut v = v.copy();
    for attempt in 0..8 {
        orthogonalise(&mut v, basis);
        orthogonalise(&mut v, basis);
        let n = norm(&v);
        if n > 1e-6 || (attempt > 0 && n > 0.0) {
            return v / n;
        }
        v = fresh().to_device(v.device()).to_kind(v.kind());
    }
    panic!("Lanczos: no direction left outside a basis of {} vectors", basis.len())
}

fn orthogonalise(w: &mut Tensor, basis: &[Tensor]) {
    for q in basis {
        let c = dot(w, q);
        *w -= q * c;
    }
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[])
}

fn norm(a: &Tensor) -> f64 {
    dot(a, a).sqrt()
}

/// Eigenvalues of the symmetric tridiagonal matrix with diagonal `alpha` and off-diagonal `beta`,
/// in decreasing order, and its eigenvectors as a row-major m x m array whose column i belongs to
/// eigenvalue i.
fn tridiagonal_eigen(alpha: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = alpha.len();
    let mut t = vec![0f64; m * m];
    for i in 0..m {
        t[i * m + i] = alpha[i];
        if i + 1 < m {
            t[i * m + i + 1] = beta[i];
            t[(i + 1) * m + i] = beta[i];
        }
    }
    let t = Tensor::from_slice(&t).view([m as i64, m as i64]);
    // Ascending from libtorch; flipped to decreasing.
    let (values, vectors) = t.linalg_eigh("L");
    let values = Vec::<f64>::try_from(values.flip([0])).expect("f64 eigenvalues");
    let vectors = Vec::<f64>::try_from(vectors.flip([1]).contiguous().view([-1])).expect("f64 eigenvectors");
    (values, vectors)
}

fn ritz_pairs(theta: &[f64], s: &[f64], basis: &[Tensor], k: usize, m: usize) -> Eigenpairs {
    let k = k.min(m);
    let device: Device = basis[0].device();
    let kind: Kind = basis[0].kind();
    let stacked = Tensor::stack(basis, 0);
    let vectors = (0..k)
        .map(|i| {
            let coefficients: Vec<f64> = (0..m).map(|j| s[j * m + i]).collect();
            let c = Tensor::from_slice(&coefficients).to_kind(kind).to_device(device);
            c.matmul(&stacked)
        })
        .collect();
    Eigenpairs { values: theta[..k].to_vec(), vectors, iterations: m }
}

/// A symmetric matrix Q diag(values) Q^T with a random orthogonal Q, in f64.
#[cfg(test)]
pub(crate) fn with_spectrum(values: &[f64], seed: u64) -> Tensor {
    let n = values.len() as i64;
    let g: Vec<f64> = crate::rng::Rng::new(seed, crate::rng::Stream::Lanczos)
        .normals(values.len() * values.len())
        .iter()
        .map(|&x| x as f64)
        .collect();
    let (q, _) = Tensor::linalg_qr(&Tensor::from_slice(&g).view([n, n]), "reduced");
    q.matmul(&Tensor::from_slice(values).diag(0)).matmul(&q.transpose(0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Rng, Stream};

    fn random(n: usize, seed: u64) -> impl FnMut() -> Tensor {
        let mut rng = Rng::new(seed, Stream::Lanczos);
        move || Tensor::from_slice(&rng.normals(n)).to_kind(Kind::Double)
    }

    #[test]
    fn finds_the_largest_eigenvalues_of_a_known_matrix() {
        let mut spectrum: Vec<f64> = vec![50.0, 20.0, 19.0, 7.5, -30.0];
        spectrum.extend((0..95).map(|i| 5.0 * (i as f64) / 95.0 - 1.0));
        let a = with_spectrum(&spectrum, 1);
        let settings = Settings { k: 3, max_iters: 100, tol: 1e-9 };
        let start = random(100, 2)();
        let found = top_eigenpairs(&mut |v| a.mv(v), &start, settings, &mut random(100, 3));
        for (got, want) in found.values.iter().zip([50.0, 20.0, 19.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", found.values);
        }
        for (value, vector) in found.values.iter().zip(&found.vectors) {
            let residual = (a.mv(vector) - vector * *value).norm().double_value(&[]);
            assert!(residual < 1e-4, "residual {residual}");
            assert!((vector.norm().double_value(&[]) - 1.0).abs() < 1e-9);
        }
        assert!(found.iterations < 100, "took {}", found.iterations);
    }

    #[test]
    fn an_eigenvector_as_start_converges_at_once_and_still_finds_k() {
        let a = with_spectrum(&[9.0, 4.0, 3.0, 1.0, 0.5, 0.25], 4);
        let settings = Settings { k: 1, max_iters: 6, tol: 1e-10 };
        let top = top_eigenpairs(&mut |v| a.mv(v), &random(6, 5)(), settings, &mut random(6, 6));
        let again = top_eigenpairs(&mut |v| a.mv(v), &top.vectors[0], settings, &mut random(6, 7));
        assert_eq!(again.iterations, 1);
        assert!((again.values[0] - 9.0).abs() < 1e-9);
        // Two wanted from an invariant start: the run restarts in a fresh direction.
        let two = top_eigenpairs(&mut |v| a.mv(v), &top.vectors[0], Settings { k: 2, ..settings }, &mut random(6, 8));
        assert!((two.values[1] - 4.0).abs() < 1e-9, "{:?}", two.values);
        // A zero start draws a fresh one; k beyond the dimension is cut to it.
        let zero = top_eigenpairs(
            &mut |v| a.mv(v),
            &Tensor::zeros([6], (Kind::Double, Device::Cpu)),
            Settings { k: 9, max_iters: 50, tol: 1e-10 },
            &mut random(6, 9),
        );
        assert_eq!(zero.values.len(), 6);
        assert!((zero.values[5] - 0.25).abs() < 1e-9, "{:?}", zero.values);
    }
}
