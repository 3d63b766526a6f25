//! Dual coordinate descent for L2-regularised linear classifiers (Hsieh et al. 2008; Yu, Huang and
//! Lin 2011), as in LIBLINEAR, the solver behind Parabel, Bonsai, omikuji and PECOS. One dual
//! variable per training point, updated in closed form (squared hinge) or by a few Newton steps
//! (logistic); the primal weights are kept up to date, so a pass costs one sweep over the nonzeros.
//! The bias is an extra feature of constant value 1, regularised like the others.

use crate::sparse::Csr;
use sweep_spec::sample::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    SquaredHinge,
    Logistic,
}

impl Loss {
    pub fn parse(name: &str) -> Option<Loss> {
        match name {
            "squared_hinge" => Some(Loss::SquaredHinge),
            "logistic" => Some(Loss::Logistic),
            _ => None,
        }
    }

    /// The log-probability a score stands for, as Parabel scores paths: exp(−max(0, 1 − s)²) for
    /// the squared hinge, the sigmoid for the logistic loss.
    pub fn log_prob(self, score: f32) -> f32 {
        match self {
            Loss::SquaredHinge => {
                let m = (1.0 - score).max(0.0);
                -m * m
            }
            Loss::Logistic => -(1.0 + (-score).exp()).ln(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverParams {
    pub loss: Loss,
    /// Inverse regularisation strength.
    pub c: f64,
    pub max_iter: usize,
    /// Stop when the spread of projected gradients (squared hinge) or their largest magnitude
    /// (logistic) falls below this, LIBLINEAR's criteria.
    pub eps: f64,
}

/// One node's training points, shared by the one-vs-rest classifiers of its children: the matrix
/// and the diagonal of the dual's Hessian (‖x_i‖² + 1 for the bias feature), computed once for all
/// of them instead of once per classifier.
pub struct Problem<'a> {
    x: &'a Csr,
    qd: Vec<f32>,
}

impl<'a> Problem<'a> {
    pub fn new(x: &'a Csr) -> Problem<'a> {
        let qd = (0..x.rows()).map(|i| x.row(i).1.iter().map(|v| v * v).sum::<f32>() + 1.0).collect();
        Problem { x, qd }
    }

    /// Asks for row i's first cache lines ahead of use: the shuffled order reads rows at random.
    fn prefetch(&self, i: usize) {
        let (a, b) = (self.x.indptr[i], self.x.indptr[i + 1]);
        for at in (a..b).step_by(16).take(2) {
            prefetch(&self.x.indices[at]);
            prefetch(&self.x.data[at]);
        }
    }

    /// w·x_i + b.
    fn margin(&self, i: usize, w: &[f32], bias: f32) -> f32 {
        let (idx, val) = self.x.row(i);
        crate::sparse::dot_dense(idx, val, w) + bias
    }

    /// (w, b) += delta · (x_i, 1).
    fn step(&self, i: usize, delta: f32, w: &mut [f32], bias: &mut f32) {
        let (idx, val) = self.x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            w[j as usize] += delta * v;
        }
        *bias += delta;
    }

    /// Fits `w` (len `x.n_cols`, overwritten) and returns the bias, for labels `positive[i]`.
    /// `scratch` is reused across calls.
    pub fn train(&self, positive: &[bool], p: &SolverParams, seed: u64, w: &mut [f32], scratch: &mut Scratch) -> f32 {
        assert_eq!(w.len(), self.x.n_cols, "one weight per feature of the problem");
        w.iter_mut().for_each(|v| *v = 0.0);
        scratch.order.clear();
        scratch.order.extend(0..self.x.rows() as u32);
        let mut rng = SplitMix64::new(seed);
        match p.loss {
            Loss::SquaredHinge => squared_hinge(self, positive, p, &mut rng, w, scratch),
            Loss::Logistic => logistic(self, positive, p, &mut rng, w, scratch),
        }
    }
}

#[derive(Default)]
pub struct Scratch {
    alpha: Vec<f64>,
    order: Vec<u32>,
}

/// A hint to the CPU to load the cache line holding `value`; no effect on the program's state.
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch neither reads into the program nor faults, and `value` is a valid reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
}

/// How many points ahead of the one being updated the solvers prefetch.
const AHEAD: usize = 4;

fn shuffle(order: &mut [u32], rng: &mut SplitMix64) {
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// LIBLINEAR's `solve_l2r_l1l2_svc` for the L2 loss, with shrinking of points whose dual variable
/// stays at zero: after the first passes most negatives drop out, which makes the many sparse
/// one-vs-rest problems of a tree cheap.
fn squared_hinge(
    problem: &Problem,
    positive: &[bool],
    p: &SolverParams,
    rng: &mut SplitMix64,
    w: &mut [f32],
    s: &mut Scratch,
) -> f32 {
    let (n, qd) = (problem.x.rows(), &problem.qd);
    let diag = 0.5 / p.c;
    s.alpha.clear();
    s.alpha.resize(n, 0.0);
    let mut bias = 0f32;
    let mut active = n;
    let (mut pg_max_old, mut pg_min_old) = (f64::INFINITY, f64::NEG_INFINITY);
    for _ in 0..p.max_iter {
        shuffle(&mut s.order[..active], rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut k = 0;
        while k < active {
            let i = s.order[k] as usize;
            if k + AHEAD < active {
                problem.prefetch(s.order[k + AHEAD] as usize);
            }
            let y = if positive[i] { 1.0 } else { -1.0 };
            let g = y * problem.margin(i, w, bias) as f64 - 1.0 + diag * s.alpha[i];
            let mut pg = 0.0;
            if s.alpha[i] == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    s.order.swap(k, active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else {
                pg = g;
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = s.alpha[i];
                s.alpha[i] = (old - g / (qd[i] as f64 + diag)).max(0.0);
                problem.step(i, ((s.alpha[i] - old) * y) as f32, w, &mut bias);
            }
            k += 1;
        }
        if pg_max - pg_min <= p.eps {
            if active == n {
                break;
            }
            // Converged on the active set: check everything once more before stopping.
            active = n;
            pg_max_old = f64::INFINITY;
            pg_min_old = f64::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
        pg_min_old = if pg_min >= 0.0 { f64::NEG_INFINITY } else { pg_min };
    }
    let _ = pg_min_old;
    bias
}

/// LIBLINEAR's `solve_l2r_lr_dual`: each dual variable α ∈ (0, C) with its complement C − α, a
/// one-dimensional Newton solve per coordinate.
fn logistic(
    problem: &Problem,
    positive: &[bool],
    p: &SolverParams,
    rng: &mut SplitMix64,
    w: &mut [f32],
    s: &mut Scratch,
) -> f32 {
    let (n, qd) = (problem.x.rows(), &problem.qd);
    let c = p.c;
    let start = (1e-3 * c).min(1e-8);
    s.alpha.clear();
    // alpha[2i] is α_i, alpha[2i + 1] is C − α_i.
    s.alpha.extend((0..n).flat_map(|_| [start, c - start]));
    let mut bias = 0f32;
    for (i, &pos) in positive.iter().enumerate().take(n) {
        let y = if pos { 1.0 } else { -1.0 };
        problem.step(i, (y * start) as f32, w, &mut bias);
    }
    let mut inner_eps = 1e-2f64;
    for _ in 0..p.max_iter {
        shuffle(&mut s.order, rng);
        let mut g_max = 0f64;
        for k in 0..n {
            let i = s.order[k] as usize;
            if k + AHEAD < n {
                problem.prefetch(s.order[k + AHEAD] as usize);
            }
            let y = if positive[i] { 1.0 } else { -1.0 };
            let a = qd[i] as f64;
            let b = y * problem.margin(i, w, bias) as f64;
            let (mut i1, mut i2, mut sign) = (2 * i, 2 * i + 1, 1.0);
            if 0.5 * a * (s.alpha[i2] - s.alpha[i1]) + b < 0.0 {
                (i1, i2, sign) = (2 * i + 1, 2 * i, -1.0);
            }
            let old = s.alpha[i1];
            let mut z = if c - old < 0.5 * c { 0.1 * old } else { old };
            let grad = |z: f64| a * (z - old) + sign * b + (z / (c - z)).ln();
            let mut gp = grad(z);
            g_max = g_max.max(gp.abs());
            let mut inner = 0;
            while inner <= 100 && gp.abs() >= inner_eps {
                let gpp = a + c / (c - z) / z;
                let next = z - gp / gpp;
                z = if next <= 0.0 { z * 0.1 } else { next };
                gp = grad(z);
                inner += 1;
            }
            if inner > 0 {
                s.alpha[i1] = z;
                s.alpha[i2] = c - z;
                problem.step(i, (sign * (z - old) * y) as f32, w, &mut bias);
            }
        }
        if g_max < p.eps {
            break;
        }
        inner_eps = (0.1 * inner_eps).max(1e-8);
    }
    bias
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on a line, positive iff x0 > x1: separable with margin.
    fn separable() -> (Csr, Vec<bool>) {
        let mut x = Csr::empty(3);
        let mut y = Vec::new();
        for i in 0..40 {
            let t = i as f32 / 40.0;
            if i % 2 == 0 {
                x.push_row(&[0, 1, 2], &[1.0, t * 0.2, 0.3]);
                y.push(true);
            } else {
                x.push_row(&[0, 1, 2], &[t * 0.2, 1.0, 0.3]);
                y.push(false);
            }
        }
        (x, y)
    }

    #[test]
    fn both_losses_separate_a_separable_problem() {
        let (x, y) = separable();
        for loss in [Loss::SquaredHinge, Loss::Logistic] {
            let p = SolverParams { loss, c: 10.0, max_iter: 200, eps: 1e-3 };
            let mut w = vec![0f32; 3];
            let bias = Problem::new(&x).train(&y, &p, 1, &mut w, &mut Scratch::default());
            for (i, &pos) in y.iter().enumerate() {
                let s = Problem::new(&x).margin(i, &w, bias);
                assert_eq!(s > 0.0, pos, "{loss:?}: point {i} scored {s}");
            }
            assert!(w[0] > 0.0 && w[1] < 0.0, "{loss:?}: {w:?}");
        }
    }

    #[test]
    fn squared_hinge_matches_the_hand_solved_dual() {
        // Two points x = +1 (positive) and x = −1 (negative), bias feature 1, C = 1/2 so D = 1.
        // By symmetry α1 = α2 = α, so w = 2α and b = 0; at the optimum the gradient
        // G = y·(w·x + b) − 1 + D·α = 2α − 1 + α vanishes: α = 1/3 and w = 2/3.
        let mut x = Csr::empty(1);
        x.push_row(&[0], &[1.0]);
        x.push_row(&[0], &[-1.0]);
        let p = SolverParams { loss: Loss::SquaredHinge, c: 0.5, max_iter: 1000, eps: 1e-9 };
        let mut w = vec![0f32];
        let bias = Problem::new(&x).train(&[true, false], &p, 0, &mut w, &mut Scratch::default());
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-4, "w = {}", w[0]);
        assert!(bias.abs() < 1e-4, "bias = {bias}");
    }

    #[test]
    fn log_probs_are_monotone_and_zero_at_a_confident_positive() {
        assert_eq!(Loss::SquaredHinge.log_prob(1.5), 0.0);
        assert_eq!(Loss::SquaredHinge.log_prob(-1.0), -4.0);
        assert!(Loss::Logistic.log_prob(2.0) > Loss::Logistic.log_prob(0.0));
        assert!((Loss::Logistic.log_prob(0.0) + 2f32.ln()).abs() < 1e-6);
    }
}
