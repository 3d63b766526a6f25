//! Tests of the optimizers on small fixed problems with real tch tensors on the CPU, including
//! values cross-checked against PyTorch 2.11 (the snippet that produced them sits beside them).

use super::*;
use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub(super) fn cfg(table: serde_json::Value, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::from_params(table.as_object().unwrap(), weight_decay).unwrap()
}

/// A VarStore holding the given named variables.
pub(super) fn store(vars: &[(&str, &[f32], &[i64])]) -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    for (name, values, shape) in vars {
        let _ = vs.root().var_copy(name, &Tensor::from_slice(values).view(*shape));
    }
    vs
}

pub(super) fn values(vs: &VarStore, name: &str) -> Vec<f32> {
    Vec::<f32>::try_from(vs.variables()[name].flatten(0, -1)).unwrap()
}

/// The 2x2 linear least-squares problem of the PyTorch cross-check.
pub(super) fn linear_problem() -> (VarStore, impl Fn(&VarStore) -> Tensor) {
    let vs = store(&[("b", &[0.2, -0.4], &[2]), ("w", &[0.5, -0.3, 0.8, 0.1], &[2, 2])]);
    let x = Tensor::from_slice(&[1.0f32, 2.0, -1.0, 0.5, 0.3, -0.7]).view([3, 2]);
    let y = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 0.5, -0.5]).view([3, 2]);
    let loss = move |vs: &VarStore| {
        let v = vs.variables();
        let d = x.linear(&v["w"], Some(&v["b"])) - &y;
        (&d * &d).mean(Kind::Float)
    };
    (vs, loss)
}

pub(super) fn train(vs: &VarStore, opt: &mut Optimizer, loss: &impl Fn(&VarStore) -> Tensor, steps: usize, lr: f64) {
    for _ in 0..steps {
        opt.zero_grad();
        loss(vs).backward();
        opt.step(lr);
    }
}

/// Reference values from PyTorch 2.11.0 (CPU, float32), produced by:
/// ```python
/// import torch
/// x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]])
/// y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5]])
/// def run(make, clip=None, steps=3):
///     b = torch.tensor([0.2, -0.4], requires_grad=True)
///     w = torch.tensor([[0.5, -0.3], [0.8, 0.1]], requires_grad=True)
///     opt = make([b, w])
///     for _ in range(steps):
///         opt.zero_grad()
///         d = torch.nn.functional.linear(x, w, b) - y
///         (d * d).mean().backward()
///         if clip is not None:
///             torch.nn.utils.clip_grad_norm_([b, w], clip)
///         opt.step()
///     return b.tolist() + sum(w.tolist(), [])
/// cases = {
///     "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False),
///     "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=False),
///     "adam_l2": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, foreach=False),
///     "adamw_clip": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, foreach=False),
///     "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.1,
///                                              initial_accumulator_value=0.05, foreach=False),
///     "adafactor": lambda p: torch.optim.Adafactor(p, lr=0.05, weight_decay=0.1, foreach=False),
/// }
/// for name, make in cases.items():
///     print(name, run(make, clip=0.5 if name == "adamw_clip" else None))
/// ```
#[test]
// The literals are PyTorch's printed float64 values, kept verbatim so they can be diffed.
#[allow(clippy::excessive_precision)]
fn three_steps_match_pytorch() {
    let cases: [(&str, serde_json::Value, f64, [f32; 6]); 6] = [
        (
            "sgd_nesterov",
            json!({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true}),
            0.01,
            [
                0.43679550290107727,
                -0.10078829526901245,
                0.5577779412269592,
                0.08022566884756088,
                0.11721403896808624,
                0.13117119669914246,
            ],
        ),
        (
            "sgd_momentum",
            json!({"name": "sgd", "lr": 0.1, "momentum": 0.9}),
            0.0,
            [
                0.4018024802207947,
                -0.17698992788791656,
                0.5606814026832581,
                0.021848279982805252,
                0.299233615398407,
                0.11730262637138367,
            ],
        ),
        (
            "adam_l2",
            json!({"name": "adam", "lr": 0.01}),
            0.1,
            [
                0.22994695603847504,
                -0.37003427743911743,
                0.5297305583953857,
                -0.27004414796829224,
                0.7700037956237793,
                0.10846492648124695,
            ],
        ),
        (
            "adamw_clip",
            json!({"name": "adamw", "lr": 0.01, "grad_clip": 0.5}),
            0.1,
            [
                0.22934943437576294,
                -0.3688468337059021,
                0.5283831357955933,
                -0.2691505253314972,
                0.767616868019104,
                0.12050576508045197,
            ],
        ),
        (
            "adagrad",
            json!({"name": "adagrad", "lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.05}),
            0.1,
            [
                0.3643658459186554,
                -0.20793254673480988,
                0.5365524888038635,
                -0.11338461935520172,
                0.5826969742774963,
                0.09725529700517654,
            ],
        ),
        (
            "adafactor",
            json!({"name": "adafactor", "lr": 0.05}),
            0.1,
            [
                0.24134165048599243,
                -0.34841376543045044,
                0.5082794427871704,
                -0.18089428544044495,
                0.7039772868156433,
                0.10172171890735626,
            ],
        ),
    ];
    for (name, table, wd, want) in cases {
        let (vs, loss) = linear_problem();
        let c = cfg(table, wd);
        let lr = c.lr;
        let mut opt = Optimizer::new(c, &vs);
        train(&vs, &mut opt, &loss, 3, lr);
        let got: Vec<f32> = [values(&vs, "b"), values(&vs, "w")].concat();
        let ulps: Vec<i64> =
            got.iter().zip(&want).map(|(g, w)| (g.to_bits() as i64 - w.to_bits() as i64).abs()).collect();
        eprintln!("{name}: distance to PyTorch in float32 ulps {ulps:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6, "{name}: got {got:?}, PyTorch {want:?}");
        }
    }
}

#[test]
fn every_optimizer_decreases_a_convex_quadratic() {
    // f(x) = 0.5 * sum(a * (x - c)^2), ill-conditioned by a factor 10.
    let a = Tensor::from_slice(&[1.0f32, 3.0, 10.0, 0.5, 2.0]);
    let c = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 1.5, -1.0]);
    let loss = |vs: &VarStore| {
        let d = &vs.variables()["x"] - &c;
        (&a * &d * &d).sum(Kind::Float) * 0.5
    };
    let tables = [
        json!({"name": "sgd", "lr": 0.05}),
        json!({"name": "sgd", "lr": 0.05, "momentum": 0.9}),
        json!({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}),
        json!({"name": "adam", "lr": 0.05}),
        json!({"name": "adamw", "lr": 0.05}),
        json!({"name": "adagrad", "lr": 0.5}),
        // Adafactor's step is relative to the weights' RMS, which starts at 0 here: it grows by
        // about lr per step from eps2 first.
        json!({"name": "adafactor", "lr": 0.1, "relative_step": false}),
        json!({"name": "adafactor", "lr": 0.1, "relative_step": false, "beta1": 0.9}),
        json!({"name": "shampoo", "lr": 0.5}),
        json!({"name": "shampoo", "lr": 0.05, "graft": "sgd", "momentum": 0.5, "precondition_every": 5}),
    ];
    for table in tables {
        let vs = store(&[("x", &[0.0; 5], &[5])]);
        let c = cfg(table.clone(), 1e-4);
        let lr = c.lr;
        let mut opt = Optimizer::new(c, &vs);
        let before = loss(&vs).double_value(&[]);
        train(&vs, &mut opt, &loss, 200, lr);
        let after = loss(&vs).double_value(&[]);
        assert!(after < 0.01 * before, "{table}: loss {before} -> {after}");
        assert_eq!(opt.steps(), 200);
    }
}

/// A loss whose gradient is `g` wherever the parameter is.
fn linear_loss(g: &[f32]) -> impl Fn(&VarStore) -> Tensor {
    let g = Tensor::from_slice(g);
    move |vs: &VarStore| (&vs.variables()["x"] * &g).sum(Kind::Float)
}

#[test]
fn adam_first_step_moves_each_parameter_by_lr_times_sign_of_grad() {
    let g = [3.0f32, -0.01, 1e3, -7.0, 0.2];
    let vs = store(&[("x", &[1.0, 2.0, 3.0, 4.0, 5.0], &[5])]);
    let before = values(&vs, "x");
    let mut opt = Optimizer::new(cfg(json!({"name": "adam", "lr": 0.01}), 0.0), &vs);
    train(&vs, &mut opt, &linear_loss(&g), 1, 0.01);
    for ((b, a), g) in before.iter().zip(values(&vs, "x")).zip(g) {
        let moved = a - b;
        assert!((moved + 0.01 * g.signum()).abs() < 1e-6, "grad {g}: moved {moved}");
    }
}

#[test]
fn adamw_differs_from_adam_only_through_decoupled_decay() {
    let g = [0.5f32, -1.5, 0.1];
    let x0 = [1.0f32, -2.0, 0.5];
    let (lr, wd) = (0.01, 0.1);
    let run = |name: &str, wd: f64| {
        let vs = store(&[("x", &x0, &[3])]);
        let mut opt = Optimizer::new(cfg(json!({"name": name, "lr": lr}), wd), &vs);
        let mut trajectory = vec![values(&vs, "x")];
        for _ in 0..4 {
            train(&vs, &mut opt, &linear_loss(&g), 1, lr);
            trajectory.push(values(&vs, "x"));
        }
        let state: HashMap<String, Tensor> = opt.state().into_iter().collect();
        (trajectory, state)
    };
    let (adam, adam_state) = run("adam", 0.0);
    let (adamw, adamw_state) = run("adamw", wd);
    let (adam_l2, adam_l2_state) = run("adam", wd);
    // Without decay the two are the same optimizer.
    assert_eq!(run("adamw", 0.0).0, adam);
    // Decoupled decay never reaches the moments; L2 decay does.
    for key in ["exp_avg/x", "exp_avg_sq/x"] {
        assert!(adamw_state[key].equal(&adam_state[key]), "{key}");
        assert!(!adam_l2_state[key].equal(&adam_state[key]), "{key}");
    }
    // So each AdamW step is Adam's step applied to the shrunk weights.
    let mut expected = x0.to_vec();
    for t in 1..adam.len() {
        for (i, e) in expected.iter_mut().enumerate() {
            *e = *e * (1.0 - lr * wd) as f32 + (adam[t][i] - adam[t - 1][i]);
        }
        for (e, got) in expected.iter().zip(&adamw[t]) {
            assert!((e - got).abs() < 1e-6, "step {t}: expected {expected:?}, got {:?}", adamw[t]);
        }
    }
    assert_ne!(adamw, adam_l2);
}

#[test]
fn nesterov_differs_from_plain_momentum_as_the_formulas_say() {
    // f(x) = 0.5 * a * x^2, gradient a * x; three steps worked in f64 next to the tensors.
    let (a, x0, lr, mu) = (2.0f64, 1.0f64, 0.1, 0.9);
    let by_hand = |nesterov: bool| {
        let (mut x, mut buf) = (x0, 0.0);
        for t in 0..3 {
            let g = a * x;
            buf = if t == 0 { g } else { mu * buf + g };
            x -= lr * if nesterov { g + mu * buf } else { buf };
        }
        x
    };
    let run = |nesterov: bool| {
        let vs = store(&[("x", &[x0 as f32], &[1])]);
        let table = json!({"name": "sgd", "lr": lr, "momentum": mu, "nesterov": nesterov});
        let mut opt = Optimizer::new(cfg(table, 0.0), &vs);
        let loss = move |vs: &VarStore| {
            let x = &vs.variables()["x"];
            (x * x).sum(Kind::Float) * (a / 2.0)
        };
        train(&vs, &mut opt, &loss, 3, lr);
        values(&vs, "x")[0] as f64
    };
    let (plain, nesterov) = (run(false), run(true));
    assert!((plain - by_hand(false)).abs() < 1e-6, "{plain} vs {}", by_hand(false));
    assert!((nesterov - by_hand(true)).abs() < 1e-6, "{nesterov} vs {}", by_hand(true));
    assert!((plain - nesterov).abs() > 0.01, "{plain} vs {nesterov}");
}

#[test]
fn grad_clipping_bounds_the_global_norm() {
    // Gradients [3, 4] and [12]: global norm 13.
    let vs = store(&[("u", &[0.0, 0.0], &[2]), ("v", &[0.0], &[1])]);
    let gu = Tensor::from_slice(&[3.0f32, 4.0]);
    let gv = Tensor::from_slice(&[12.0f32]);
    let loss = |vs: &VarStore| {
        let v = vs.variables();
        (&v["u"] * &gu).sum(Kind::Float) + (&v["v"] * &gv).sum(Kind::Float)
    };
    let global_norm = |vs: &VarStore| {
        let v = vs.variables();
        let (a, b) = (v["u"].grad(), v["v"].grad());
        ((&a * &a).sum(Kind::Double) + (&b * &b).sum(Kind::Double)).double_value(&[]).sqrt()
    };
    let mut opt = Optimizer::new(cfg(json!({"name": "sgd", "lr": 1.0, "grad_clip": 1.3}), 0.0), &vs);
    train(&vs, &mut opt, &loss, 1, 1.0);
    let clipped = global_norm(&vs);
    assert!(clipped <= 1.3 + 1e-6 && clipped > 1.3 - 1e-4, "clipped norm {clipped}");
    // The update used the clipped gradients: with lr 1 it moved by exactly them.
    let moved = values(&vs, "u").iter().chain(&values(&vs, "v")).map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    assert!((moved - clipped).abs() < 1e-6, "moved {moved}, clipped norm {clipped}");
    // Under the limit the gradients are left exactly as they are.
    let mut loose = Optimizer::new(cfg(json!({"name": "sgd", "lr": 1.0, "grad_clip": 100.0}), 0.0), &vs);
    train(&vs, &mut loose, &loss, 1, 1.0);
    assert!(vs.variables()["u"].grad().equal(&gu) && vs.variables()["v"].grad().equal(&gv));
}

#[test]
fn zero_grad_zeroes_in_place() {
    let (vs, loss) = linear_problem();
    let mut opt = Optimizer::new(cfg(json!({"name": "adam", "lr": 0.1}), 0.0), &vs);
    train(&vs, &mut opt, &loss, 1, 0.1);
    let grad = vs.variables()["w"].grad();
    let address = grad.data_ptr();
    assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    opt.zero_grad();
    let after = vs.variables()["w"].grad();
    assert_eq!(after.data_ptr(), address);
    assert_eq!(after.abs().sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn state_has_stable_names_and_load_state_refuses_what_does_not_fit() {
    let (vs, loss) = linear_problem();
    let mut opt = Optimizer::new(cfg(json!({"name": "adam", "lr": 0.1}), 0.0), &vs);
    train(&vs, &mut opt, &loss, 2, 0.1);
    let state = opt.state();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["step", "step/b", "exp_avg/b", "exp_avg_sq/b", "step/w", "exp_avg/w", "exp_avg_sq/w"]);
    assert_eq!((state[0].1.dim(), state[0].1.kind(), state[0].1.int64_value(&[])), (0, Kind::Int64, 2));
    let saved: HashMap<String, Tensor> = state.iter().map(|(n, t)| (n.clone(), t.copy())).collect();

    let (fresh_vs, _) = linear_problem();
    let mut fresh = Optimizer::new(cfg(json!({"name": "adam", "lr": 0.1}), 0.0), &fresh_vs);
    let mut missing = saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<HashMap<_, _>>();
    missing.remove("exp_avg_sq/w");
    let err = fresh.load_state(&missing).unwrap_err();
    assert!(err.contains("missing tensor `exp_avg_sq/w`"), "{err}");
    let mut misshaped = missing;
    misshaped.insert("exp_avg_sq/w".into(), Tensor::zeros([4], (Kind::Float, Device::Cpu)));
    let err = fresh.load_state(&misshaped).unwrap_err();
    assert!(err.contains("`exp_avg_sq/w` has shape [4]"), "{err}");
    let mut extra = saved.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<HashMap<_, _>>();
    extra.insert("momentum_buffer/w".into(), Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)));
    let err = fresh.load_state(&extra).unwrap_err();
    assert!(err.contains("unexpected tensor `momentum_buffer/w`"), "{err}");
    // The refused loads changed nothing.
    assert_eq!(fresh.steps(), 0);
    assert_eq!(fresh.state()[2].1.abs().sum(Kind::Float).double_value(&[]), 0.0);

    fresh.load_state(&saved).unwrap();
    assert_eq!(fresh.steps(), 2);
    for ((n, a), (_, b)) in fresh.state().iter().zip(&state) {
        assert!(a.equal(b), "{n}");
    }
}

/// A fused group's update (`step_members`) moves member g's rows exactly as a lone optimizer with
/// that member's learning rate and weight decay moves the member alone, for every rule.
#[test]
fn per_member_rates_match_each_member_alone() {
    let (lrs, decays) = ([0.1, 0.01, 0.05], [0.0, 0.01, 0.1]);
    for table in [
        json!({"name": "sgd", "lr": 1.0, "momentum": 0.9, "nesterov": true}),
        json!({"name": "adam", "lr": 1.0}),
        json!({"name": "adamw", "lr": 1.0}),
    ] {
        // Three members of a [2, 2] weight, stacked along the first axis as fused layers hold them.
        let member = |g: usize| -> Vec<f32> { (0..4).map(|i| 0.3 * (g as f32 + 1.0) - 0.2 * i as f32).collect() };
        let fused_values: Vec<f32> = (0..3).flat_map(member).collect();
        let fused = store(&[("w", &fused_values, &[6, 2])]);
        let lone: Vec<VarStore> = (0..3).map(|g| store(&[("w", &member(g), &[2, 2])])).collect();
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.7]).view([2, 2]);
        let loss = |w: &Tensor| (w.matmul(&x).sin() * 3.0).sum(Kind::Float);
        let mut fused_opt = Optimizer::new(cfg(table.clone(), 0.0), &fused);
        let mut lone_opts: Vec<Optimizer> =
            lone.iter().zip(decays).map(|(vs, wd)| Optimizer::new(cfg(table.clone(), wd), vs)).collect();
        for _ in 0..5 {
            fused_opt.zero_grad();
            let w = &fused.variables()["w"];
            // Each member's own loss, summed: member g's gradient is its loss's gradient.
            loss(&w.view([3, 2, 2]).narrow(0, 0, 1).squeeze_dim(0))
                .g_add(&loss(&w.view([3, 2, 2]).narrow(0, 1, 1).squeeze_dim(0)))
                .g_add(&loss(&w.view([3, 2, 2]).narrow(0, 2, 1).squeeze_dim(0)))
                .backward();
            fused_opt.step_members(&lrs, &decays).unwrap();
            for ((vs, opt), lr) in lone.iter().zip(&mut lone_opts).zip(lrs) {
                opt.zero_grad();
                loss(&vs.variables()["w"]).backward();
                opt.step(lr);
            }
        }
        let after = values(&fused, "w");
        for (g, vs) in lone.iter().enumerate() {
            let alone = values(vs, "w");
            for (a, f) in alone.iter().zip(&after[4 * g..4 * g + 4]) {
                assert!((a - f).abs() <= 1e-6 * a.abs().max(1.0), "{table}: member {g}: {a} alone, {f} fused");
            }
            assert_ne!(alone, member(g), "{table}: member {g} moved");
        }
    }
    let mut clipped =
        Optimizer::new(cfg(json!({"name": "sgd", "lr": 0.1, "grad_clip": 1.0}), 0.0), &store(&[("w", &[1.0], &[1])]));
    assert!(clipped.step_members(&[0.1], &[0.0]).unwrap_err().contains("grad_clip"));
}

/// The step a CUDA graph captures (rates and step count on the device, host counts moved after)
/// follows the ordinary step for every rule, through a learning-rate change.
#[test]
fn graph_steps_follow_ordinary_steps() {
    for table in [
        json!({"name": "sgd", "lr": 0.1, "momentum": 0.9}),
        json!({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "grad_clip": 0.5}),
        json!({"name": "adam", "lr": 0.05}),
        json!({"name": "adamw", "lr": 0.05}),
    ] {
        let (plain_vs, loss) = linear_problem();
        let (graph_vs, _) = linear_problem();
        let mut plain = Optimizer::new(cfg(table.clone(), 0.01), &plain_vs);
        let mut graphed = Optimizer::new(cfg(table.clone(), 0.01), &graph_vs);
        assert!(graphed.graph_step().is_err(), "{table}: rates first");
        train(&plain_vs, &mut plain, &loss, 1, 0.1);
        train(&graph_vs, &mut graphed, &loss, 1, 0.1);
        for step in 0..6 {
            let lr = if step < 3 { 0.1 } else { 0.03 };
            train(&plain_vs, &mut plain, &loss, 1, lr);
            graphed.set_graph_rates(&[lr], &[0.01]).unwrap();
            graphed.zero_grad();
            loss(&graph_vs).backward();
            graphed.graph_step().unwrap();
            graphed.count_step();
        }
        assert_eq!(plain.steps(), graphed.steps());
        for name in ["w", "b"] {
            for (a, b) in values(&plain_vs, name).iter().zip(values(&graph_vs, name)) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{table} {name}: {a} vs {b}");
            }
        }
        let (a, b) = (plain.state(), graphed.state());
        assert_eq!(a.iter().map(|(n, _)| n).collect::<Vec<_>>(), b.iter().map(|(n, _)| n).collect::<Vec<_>>());
    }
}
