//! Tests of the model zoo on CPU with real libtorch and small widths: shapes, parameter counts
//! against closed forms, train/eval behaviour, trainability, seeding and channels-last.

use super::*;
use crate::torch_rng_lock as rng_lock;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind};

fn spec(arch: Arch, width: i64, image_size: i64) -> ModelSpec {
    ModelSpec { arch, width, in_channels: 3, image_size, classes: 10, dropout: 0.0 }
}

/// A fresh var store and the network built into it from `seed`.
fn seeded(spec: &ModelSpec, seed: i64) -> (nn::VarStore, Box<dyn ModuleT + Send>) {
    let _guard = rng_lock();
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build(&vs.root(), spec).unwrap();
    (vs, net)
}

fn images(batch: i64, spec: &ModelSpec, seed: i64) -> Tensor {
    let _guard = rng_lock();
    tch::manual_seed(seed);
    Tensor::randn([batch, spec.in_channels, spec.image_size, spec.image_size], (Kind::Float, Device::Cpu))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Running means and variances of every BatchNorm, in name order.
fn running_stats(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut stats: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.contains("running_"))
        .map(|(name, t)| (name, t.copy()))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    stats
}

/// Closed forms of the parameter counts, written out layer by layer from the architecture; `c`
/// input channels, `n` classes.
fn expected_params(arch: Arch, k: i64, c: i64, s: i64, n: i64) -> i64 {
    match arch {
        // Per stage (convs k^2 terms, BN 2 per channel): stem 9ck; stage 1: 2*(18k^2 + 4k);
        // stage 2: 56k^2 + 6k (with a 2k^2 projection) + 72k^2 + 8k; stage 3: 224k^2 + 12k +
        // 288k^2 + 16k; stage 4: 896k^2 + 24k + 1152k^2 + 32k; final BN 16k; linear 8kn + n.
        Arch::PreactResnet18 => 2724 * k * k + 9 * c * k + 122 * k + 8 * k * n + n,
        // Convs with bias: 9ck + k, 18k^2 + 2k, 72k^2 + 4k, 288k^2 + 8k; BN 2*15k; fc 8kn + n.
        Arch::Cnn5 => 378 * k * k + 9 * c * k + 45 * k + 8 * k * n + n,
        Arch::Mlp => c * s * s * k + k + k * n + n,
    }
}

#[test]
fn arch_names_round_trip_and_errors_list_them() {
    for arch in Arch::ALL {
        assert_eq!(arch.name().parse::<Arch>(), Ok(arch));
        assert_eq!(arch.to_string(), arch.name());
    }
    let err = "resnet18".parse::<Arch>().unwrap_err();
    for name in ["preact_resnet18", "cnn5", "mlp", "resnet18"] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn invalid_specs_name_the_field() {
    let ok = spec(Arch::Cnn5, 2, 32);
    let cases: Vec<(&str, ModelSpec)> = vec![
        ("width", ModelSpec { width: 0, ..ok }),
        ("in_channels", ModelSpec { in_channels: 0, ..ok }),
        ("image_size", ModelSpec { image_size: 7, ..ok }),
        ("image_size", ModelSpec { arch: Arch::PreactResnet18, image_size: 4, ..ok }),
        ("image_size", ModelSpec { arch: Arch::Mlp, image_size: 1 << 40, ..ok }),
        ("classes", ModelSpec { classes: 1, ..ok }),
        ("dropout", ModelSpec { dropout: 1.0, ..ok }),
        ("dropout", ModelSpec { dropout: -0.1, ..ok }),
        ("dropout", ModelSpec { dropout: f64::NAN, ..ok }),
    ];
    let vs = nn::VarStore::new(Device::Cpu);
    for (field, bad) in cases {
        let err = build(&vs.root(), &bad).expect_err("a bad spec must not build");
        assert!(err.starts_with(&format!("{field}:")), "{field}: {err}");
    }
    // Nothing was allocated for the rejected specs, and the smallest valid sizes do build.
    assert_eq!(vs.len(), 0);
    assert!(build(&vs.root(), &ModelSpec { image_size: 8, ..ok }).is_ok());
    assert!(build(&(vs.root() / "m"), &ModelSpec { arch: Arch::Mlp, image_size: 1, ..ok }).is_ok());
}

#[test]
fn outputs_are_logits_for_every_arch_and_image_size() {
    for arch in Arch::ALL {
        for size in [32, 64] {
            let s = spec(arch, 2, size);
            let (_vs, net) = seeded(&s, 0);
            let x = images(3, &s, 1);
            for train in [false, true] {
                let y = net.forward_t(&x, train);
                assert_eq!(y.size(), [3, 10], "{arch} at {size} px, train = {train}");
                assert_eq!(y.kind(), Kind::Float);
                assert!(y.isfinite().all().int64_value(&[]) == 1, "{arch} at {size} px");
            }
        }
    }
}

#[test]
fn other_channel_counts_and_odd_sizes_work() {
    for arch in Arch::ALL {
        let s = ModelSpec { in_channels: 1, image_size: 28, classes: 7, ..spec(arch, 3, 28) };
        let (_vs, net) = seeded(&s, 0);
        assert_eq!(net.forward_t(&images(2, &s, 1), false).size(), [2, 7], "{arch}");
    }
}

#[test]
fn resnet18_at_k64_has_the_standard_size() {
    let s = spec(Arch::PreactResnet18, 64, 32);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build(&vs.root(), &s).unwrap();
    let count = parameter_count(&vs);
    eprintln!("preact_resnet18, k = 64, 10 classes: {count} parameters");
    // kuangliu's PreActResNet18 has 11,171,146; the paper's code adds the final BN (1,024).
    assert_eq!(count, 11_172_170);
    assert!(((count as f64) / 11.17e6 - 1.0).abs() < 0.01, "{count}");
    // Running statistics are buffers, not parameters: 2 per BN channel, and the BNs have
    // 4k + 7k + 14k + 28k channels in the four stages plus 8k in the final one.
    let buffers: i64 = running_stats(&vs).iter().map(|(_, t)| t.numel() as i64).sum();
    assert_eq!(buffers, 2 * 61 * 64);
}

#[test]
fn parameter_counts_match_the_closed_forms() {
    for arch in Arch::ALL {
        for (k, size, c, n) in [(1, 32, 3, 10), (3, 32, 3, 10), (5, 16, 1, 100), (16, 64, 3, 10)] {
            let s = ModelSpec { in_channels: c, classes: n, ..spec(arch, k, size) };
            let vs = nn::VarStore::new(Device::Cpu);
            let _net = build(&vs.root(), &s).unwrap();
            assert_eq!(
                parameter_count(&vs),
                expected_params(arch, k, c, size, n),
                "{arch}, k = {k}, {size} px, {c} channels, {n} classes"
            );
        }
    }
}

#[test]
fn conv_nets_grow_quadratically_in_width() {
    for arch in [Arch::PreactResnet18, Arch::Cnn5] {
        let count = |k: i64| {
            let vs = nn::VarStore::new(Device::Cpu);
            let _net = build(&vs.root(), &spec(arch, k, 32)).unwrap();
            parameter_count(&vs) as f64
        };
        let (c8, c16, c32) = (count(8), count(16), count(32));
        for (ratio, what) in [(c16 / c8, "16/8"), (c32 / c16, "32/16")] {
            assert!((3.8..4.0).contains(&ratio), "{arch} count ratio {what}: {ratio}");
        }
    }
}

#[test]
fn batchnorm_statistics_move_only_in_train_mode() {
    for arch in [Arch::PreactResnet18, Arch::Cnn5] {
        let s = spec(arch, 2, 16);
        let (vs, net) = seeded(&s, 0);
        // Shift and scale the inputs so the batch statistics differ from the initial 0 and 1.
        let x = images(8, &s, 1) * 3.0 + 2.0;
        let before = running_stats(&vs);
        assert!(!before.is_empty(), "{arch} has no BatchNorm");
        let _ = net.forward_t(&x, false);
        for ((name, old), (_, new)) in before.iter().zip(running_stats(&vs)) {
            assert_eq!(max_abs_diff(old, &new), 0.0, "{arch}: eval moved {name}");
        }
        let _ = net.forward_t(&x, true);
        for ((name, old), (_, new)) in before.iter().zip(running_stats(&vs)) {
            assert!(max_abs_diff(old, &new) > 1e-4, "{arch}: train left {name}");
        }
    }
}

#[test]
fn eval_mode_is_deterministic_and_uses_running_statistics() {
    for arch in Arch::ALL {
        let s = spec(arch, 2, 16);
        let (_vs, net) = seeded(&s, 0);
        let x = images(4, &s, 1);
        let a = net.forward_t(&x, false);
        assert_eq!(max_abs_diff(&a, &net.forward_t(&x, false)), 0.0, "{arch}");
        // In eval, one image's logits do not depend on the rest of the batch.
        let one = net.forward_t(&x.narrow(0, 0, 1), false);
        assert!(max_abs_diff(&a.narrow(0, 0, 1), &one) < 1e-4, "{arch}");
    }
}

#[test]
fn dropout_acts_in_train_mode_only() {
    for arch in Arch::ALL {
        let plain = spec(arch, 4, 16);
        let dropped = ModelSpec { dropout: 0.5, ..plain };
        // Dropout has no variables, so the same seed gives the same weights.
        let (_vs0, net0) = seeded(&plain, 7);
        let (_vs1, net1) = seeded(&dropped, 7);
        let x = images(8, &plain, 1);
        let eval_gap = max_abs_diff(&net0.forward_t(&x, false), &net1.forward_t(&x, false));
        assert_eq!(eval_gap, 0.0, "{arch}: dropout changed the eval output");
        let train_gap = max_abs_diff(&net0.forward_t(&x, true), &net1.forward_t(&x, true));
        assert!(train_gap > 1e-3, "{arch}: dropout did nothing in train mode");
    }
}

#[test]
fn the_same_seed_gives_the_same_initial_parameters() {
    for arch in Arch::ALL {
        let s = spec(arch, 3, 16);
        let (a, _) = seeded(&s, 42);
        let (b, _) = seeded(&s, 42);
        let (c, _) = seeded(&s, 43);
        let (va, vb, vc) = (a.variables(), b.variables(), c.variables());
        assert_eq!(va.len(), vb.len());
        let mut differs = false;
        for (name, t) in &va {
            assert_eq!(max_abs_diff(t, &vb[name]), 0.0, "{arch}: {name} differs under one seed");
            differs |= max_abs_diff(t, &vc[name]) > 0.0;
        }
        assert!(differs, "{arch}: seeds 42 and 43 gave the same parameters");
    }
}

/// Trains on one fixed batch and returns the train-mode loss before and after.
fn overfit(net: &dyn ModuleT, vs: &nn::VarStore, x: &Tensor, y: &Tensor, steps: usize) -> (f64, f64) {
    let mut opt = nn::Sgd { momentum: 0.9, ..Default::default() }.build(vs, 0.05).unwrap();
    let loss = |net: &dyn ModuleT| net.forward_t(x, true).cross_entropy_for_logits(y);
    let first = tch::no_grad(|| loss(net).double_value(&[]));
    for _ in 0..steps {
        opt.backward_step(&loss(net));
    }
    let last = tch::no_grad(|| loss(net).double_value(&[]));
    (first, last)
}

#[test]
fn sgd_overfits_sixteen_images_with_every_arch() {
    for arch in Arch::ALL {
        let s = ModelSpec { classes: 4, ..spec(arch, 4, 16) };
        let (vs, net) = seeded(&s, 0);
        let x = images(16, &s, 1);
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]).repeat([4]);
        let (first, last) = overfit(net.as_ref(), &vs, &x, &y, 40);
        eprintln!("{arch}: loss {first:.3} -> {last:.3}");
        assert!(first.is_finite() && last.is_finite(), "{arch}: {first} -> {last}");
        assert!(last < 0.3 * first, "{arch}: loss {first} -> {last}");
    }
}

#[test]
fn channels_last_keeps_the_function_and_changes_the_layout() {
    for arch in [Arch::PreactResnet18, Arch::Cnn5] {
        let s = spec(arch, 4, 16);
        let (mut vs, net) = seeded(&s, 0);
        let x = images(4, &s, 1);
        let before = net.forward_t(&x, false);
        to_channels_last(&mut vs);
        let mut convs = 0;
        for (name, t) in vs.variables() {
            if t.dim() == 4 {
                let size = t.size();
                let [_, i, _, w] = <[i64; 4]>::try_from(size.clone()).unwrap();
                // NHWC strides under NCHW sizes; a size-1 dim's stride is never used, so skip it.
                let nhwc = [size[2] * w * i, 1, w * i, i];
                for d in 0..4 {
                    if size[d] > 1 {
                        assert_eq!(t.stride()[d], nhwc[d], "{arch}: {name} {size:?} dim {d}");
                    }
                }
                convs += 1;
            }
        }
        assert!(convs > 0);
        // The module holds the same variables, so it sees the new layout with the same values.
        let xl = to_channels_last_tensor(&x);
        assert!(!xl.is_contiguous() && xl.size() == x.size());
        let after = net.forward_t(&xl, false);
        assert!(max_abs_diff(&before, &after) < 1e-4, "{arch}");
        // And it still trains: gradients reach the re-laid variables.
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let (first, last) = overfit(net.as_ref(), &vs, &xl, &y, 10);
        assert!(last < first, "{arch}: {first} -> {last}");
    }
}
