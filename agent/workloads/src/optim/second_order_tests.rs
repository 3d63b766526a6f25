//! Tests of Shampoo against closed forms, of the refresh and grafting rules, and of exact resumes
//! for the rules whose state is more than moments (Adafactor's factors, Shampoo's statistics and
//! roots). Real tch tensors on the CPU.

use super::shampoo::inverse_root;
use super::tests::{cfg, linear_problem, store, train, values};
use super::*;
use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A loss whose gradient with respect to `name` is the constant `g`.
fn constant_gradient(name: &'static str, g: &[f32], shape: &[i64]) -> impl Fn(&VarStore) -> Tensor {
    let g = Tensor::from_slice(g).view(shape);
    move |vs: &VarStore| (&vs.variables()[name] * &g).sum(Kind::Float)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}: got {got:?}, want {want:?}");
    }
}

/// Shampoo's first step on a matrix gradient G = U S Vᵀ, from epsilon I: L = εI + U S² Uᵀ and
/// R = εI + V S² Vᵀ, so L^(-1/4) G R^(-1/4) = U diag(s / sqrt(s² + ε)) Vᵀ, computed here through
/// an SVD rather than the eigendecompositions the optimizer uses.
fn first_shampoo_direction(g: &Tensor, epsilon: f64) -> Tensor {
    let (u, s, v) = g.to_kind(Kind::Double).svd(true, true);
    let scaled = &s / (&s * &s + epsilon).sqrt();
    (u * scaled.unsqueeze(0)).matmul(&v.tr())
}

#[test]
fn inverse_roots_invert_their_power() {
    let a = Tensor::from_slice(&[4.0f64, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0]).view([3, 3]);
    for p in [2.0, 4.0] {
        let root = inverse_root(&a, p, 1e-12);
        let mut product = a.shallow_clone();
        for _ in 0..p as usize {
            product = root.matmul(&product);
        }
        assert_close(&f64s(&product), &f64s(&Tensor::eye(3, (Kind::Double, Device::Cpu))), 1e-10, "root^p A");
    }
}

#[test]
fn shampoos_first_step_is_the_closed_form_for_a_matrix_a_vector_and_blocks() {
    let (lr, epsilon) = (0.1, 1e-3);
    // A 2x3 matrix in one block.
    let g: Vec<f32> = vec![0.5, -1.0, 2.0, 1.5, 0.3, -0.7];
    let vs = store(&[("w", &[0.0; 6], &[2, 3])]);
    let mut opt = Optimizer::new(cfg(json!({"name": "shampoo", "lr": lr, "epsilon": epsilon}), 0.0), &vs);
    train(&vs, &mut opt, &constant_gradient("w", &g, &[2, 3]), 1, lr);
    let want = first_shampoo_direction(&Tensor::from_slice(&g).view([2, 3]), epsilon) * -lr;
    let got: Vec<f64> = values(&vs, "w").iter().map(|&x| x as f64).collect();
    assert_close(&got, &f64s(&want), 1e-5, "matrix");

    // A vector: L = εI + g gᵀ has g as an eigenvector, so L^(-1/2) g = g / sqrt(ε + |g|²).
    let g: Vec<f32> = vec![0.3, -0.4, 1.2];
    let vs = store(&[("b", &[0.0; 3], &[3])]);
    let mut opt = Optimizer::new(cfg(json!({"name": "shampoo", "lr": lr, "epsilon": epsilon}), 0.0), &vs);
    train(&vs, &mut opt, &constant_gradient("b", &g, &[3]), 1, lr);
    let norm2: f64 = g.iter().map(|&x| (x as f64).powi(2)).sum();
    let want: Vec<f64> = g.iter().map(|&x| -lr * x as f64 / (epsilon + norm2).sqrt()).collect();
    let got: Vec<f64> = values(&vs, "b").iter().map(|&x| x as f64).collect();
    assert_close(&got, &want, 1e-5, "vector");

    // A 3x5 matrix cut into blocks of at most 2: rows {0,1}, {2}; columns {0,1}, {2,3}, {4}. Each
    // block steps by its own closed form.
    let g: Vec<f32> = (0..15).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let vs = store(&[("w", &[0.0; 15], &[3, 5])]);
    let mut opt =
        Optimizer::new(cfg(json!({"name": "shampoo", "lr": lr, "epsilon": epsilon, "block_size": 2}), 0.0), &vs);
    assert_eq!(opt.state().iter().filter(|(n, _)| n.starts_with("shampoo_left.")).count(), 6);
    train(&vs, &mut opt, &constant_gradient("w", &g, &[3, 5]), 1, lr);
    let full = Tensor::from_slice(&g).view([3, 5]);
    let want = Tensor::zeros([3, 5], (Kind::Double, Device::Cpu));
    for (r0, rl) in [(0, 2), (2, 1)] {
        for (c0, cl) in [(0, 2), (2, 2), (4, 1)] {
            let block = full.narrow(0, r0, rl).narrow(1, c0, cl);
            want.narrow(0, r0, rl).narrow(1, c0, cl).copy_(&(first_shampoo_direction(&block, epsilon) * -lr));
        }
    }
    let got: Vec<f64> = values(&vs, "w").iter().map(|&x| x as f64).collect();
    assert_close(&got, &f64s(&want), 1e-5, "blocks");
}

#[test]
fn shampoo_refreshes_its_roots_on_schedule_and_grafts_before_preconditioning() {
    let g: Vec<f32> = vec![0.5, -1.0, 2.0, 1.5, 0.3, -0.7];
    let loss = constant_gradient("w", &g, &[2, 3]);
    let vs = store(&[("w", &[0.0; 6], &[2, 3])]);
    let table = json!({"name": "shampoo", "lr": 0.1, "start_preconditioning_step": 3, "precondition_every": 2, "graft": "adagrad"});
    let mut opt = Optimizer::new(cfg(table, 0.0), &vs);
    let root = |opt: &Optimizer| {
        opt.state().into_iter().find(|(n, _)| n == "shampoo_left_root.0/w").map(|(_, t)| t.copy()).unwrap()
    };
    let identity = Tensor::eye(2, (Kind::Float, Device::Cpu));
    // Steps 1 and 2 take diagonal Adagrad's step: lr * g / (sqrt(t g²) + ε), that is lr / sqrt(t) * sign(g).
    for t in 1..=2 {
        let before = values(&vs, "w");
        train(&vs, &mut opt, &loss, 1, 0.1);
        let moved: Vec<f64> = values(&vs, "w").iter().zip(&before).map(|(a, b)| (*a - *b) as f64).collect();
        let want: Vec<f64> = g.iter().map(|&x| -0.1 / (t as f64).sqrt() * (x as f64).signum()).collect();
        assert_close(&moved, &want, 1e-5, &format!("step {t}"));
        assert!(root(&opt).equal(&identity), "no roots before step 3");
    }
    // Roots are computed at steps 3, 5, 7 and kept in between.
    let mut roots = vec![];
    for _ in 3..=7 {
        train(&vs, &mut opt, &loss, 1, 0.1);
        roots.push(root(&opt));
    }
    assert!(!roots[0].equal(&identity));
    assert!(roots[1].equal(&roots[0]) && roots[3].equal(&roots[2]));
    assert!(!roots[2].equal(&roots[1]) && !roots[4].equal(&roots[3]));
}

/// Trains `steps`, keeps copies of the parameters and the optimizer state as a checkpoint would,
/// trains `more`; then a fresh optimizer on the copies trains `more` from the loaded state. The
/// two must agree bit for bit.
fn resumes_exactly(table: serde_json::Value, steps: usize, more: usize) {
    let (vs, loss) = linear_problem();
    let mut opt = Optimizer::new(cfg(table.clone(), 0.01), &vs);
    train(&vs, &mut opt, &loss, steps, 0.05);
    let params: Vec<(String, Vec<f32>)> = ["b", "w"].iter().map(|n| (n.to_string(), values(&vs, n))).collect();
    let saved: HashMap<String, Tensor> = opt.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
    train(&vs, &mut opt, &loss, more, 0.05);

    let (resumed_vs, _) = linear_problem();
    tch::no_grad(|| {
        for (name, v) in &params {
            resumed_vs.variables()[name]
                .shallow_clone()
                .copy_(&Tensor::from_slice(v).view(vs.variables()[name].size().as_slice()));
        }
    });
    let mut resumed = Optimizer::new(cfg(table.clone(), 0.01), &resumed_vs);
    resumed.load_state(&saved).unwrap();
    train(&resumed_vs, &mut resumed, &loss, more, 0.05);
    for name in ["b", "w"] {
        assert_eq!(values(&vs, name), values(&resumed_vs, name), "{table}: {name}");
    }
    for ((n, a), (_, b)) in opt.state().iter().zip(&resumed.state()) {
        assert!(a.equal(b), "{table}: {n}");
    }
}

#[test]
fn adagrad_adafactor_and_shampoo_resume_exactly_between_refreshes() {
    resumes_exactly(json!({"name": "adagrad", "lr": 0.05, "lr_decay": 0.1}), 3, 3);
    resumes_exactly(json!({"name": "adafactor", "lr": 0.05}), 3, 3);
    resumes_exactly(json!({"name": "adafactor", "lr": 0.05, "beta1": 0.9, "relative_step": false}), 3, 3);
    // Roots refreshed at steps 2, 5, 8: the resume at 6 runs on the roots of step 5 from the checkpoint.
    resumes_exactly(
        json!({"name": "shampoo", "lr": 0.05, "momentum": 0.9, "graft": "adagrad", "block_size": 1,
               "start_preconditioning_step": 2, "precondition_every": 3}),
        6,
        4,
    );
}

#[test]
fn state_bytes_count_what_each_rule_keeps() {
    let bytes = |table: serde_json::Value| {
        // A 4x6 matrix and a 6-vector, float32; 3 step counts of 8 bytes.
        let vs = store(&[("w", &[0.1; 24], &[4, 6]), ("b", &[0.1; 6], &[6])]);
        Optimizer::new(cfg(table, 0.0), &vs).state_bytes() - 3 * 8
    };
    assert_eq!(bytes(json!({"name": "sgd", "lr": 0.1})), 0);
    assert_eq!(bytes(json!({"name": "adam", "lr": 0.1})), 2 * (24 + 6) * 4);
    assert_eq!(bytes(json!({"name": "adagrad", "lr": 0.1})), (24 + 6) * 4);
    // Factored: a row mean per row and a column mean per column; the vector keeps all 6.
    assert_eq!(bytes(json!({"name": "adafactor", "lr": 0.1})), (4 + 6 + 6) * 4);
    // L and its root 4x4, R and its root 6x6; for the vector, L and its root 6x6.
    assert_eq!(bytes(json!({"name": "shampoo", "lr": 0.1})), (2 * 16 + 2 * 36 + 2 * 36) * 4);
}

#[test]
fn fused_groups_and_captured_steps_refuse_the_host_rules() {
    for name in ["adagrad", "adafactor", "shampoo"] {
        let vs = store(&[("w", &[1.0, 2.0], &[2])]);
        let mut opt = Optimizer::new(cfg(json!({"name": name, "lr": 0.1}), 0.0), &vs);
        let err = opt.set_graph_rates(&[0.1], &[0.0]).unwrap_err();
        assert!(err.contains(name) && err.contains("sgd, adam, adamw"), "{err}");
        assert!(opt.step_members(&[0.1], &[0.0]).is_err());
    }
}
