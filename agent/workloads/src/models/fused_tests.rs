//! A fused group against its members trained alone, on the CPU with real libtorch: the same
//! logits, and the same loss trajectory under SGD with momentum and weight decay, member by member.

use super::fused;
use super::*;
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use crate::torch_rng_lock as rng_lock;
use tch::{Device, Kind};

const MEMBERS: i64 = 3;

/// A network and the var store holding its variables.
type Net = (nn::VarStore, Box<dyn ModuleT + Send>);

fn spec(arch: Arch) -> ModelSpec {
    ModelSpec { arch, width: 2, in_channels: 3, image_size: 8, classes: 5, dropout: 0.0 }
}

/// Member g alone, from seed 10 + g, and the fused group holding copies of every member.
fn lone_and_fused(spec: &ModelSpec) -> (Vec<Net>, nn::VarStore, Box<dyn ModuleT + Send>) {
    let _guard = rng_lock();
    let lone: Vec<_> = (0..MEMBERS)
        .map(|g| {
            tch::manual_seed(10 + g);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = build(&vs.root(), spec).unwrap();
            (vs, net)
        })
        .collect();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = fused::build(&vs.root(), spec, MEMBERS).unwrap();
    for (g, (lone_vs, _)) in lone.iter().enumerate() {
        fused::load_member(&vs, g as i64, lone_vs).unwrap();
    }
    (lone, vs, net)
}

/// Each member's own batch: images and labels drawn from its own seed.
fn batches(step: i64) -> Vec<(Tensor, Tensor)> {
    let _guard = rng_lock();
    (0..MEMBERS)
        .map(|g| {
            tch::manual_seed(1000 * step + g);
            let x = Tensor::randn([6, 3, 8, 8], (Kind::Float, Device::Cpu));
            let y = Tensor::randint(5, [6], (Kind::Int64, Device::Cpu));
            (x, y)
        })
        .collect()
}

fn sgd() -> OptimizerConfig {
    OptimizerConfig {
        name: OptimizerKind::Sgd,
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 5e-4,
        grad_clip: None,
    }
}

#[test]
fn fused_logits_are_each_members_logits() {
    for arch in Arch::ALL {
        fused_logits_match(arch);
    }
}

fn fused_logits_match(arch: Arch) {
    let (lone, _vs, fused_net) = lone_and_fused(&spec(arch));
    let data = batches(0);
    let xs: Vec<Tensor> = data.iter().map(|(x, _)| x.shallow_clone()).collect();
    for train in [false, true] {
        let logits = fused_net.forward_t(&fused::fuse_inputs(&xs), train);
        assert_eq!(logits.size(), vec![6, MEMBERS, 5]);
        for (g, (_, net)) in lone.iter().enumerate() {
            let alone = net.forward_t(&xs[g], train);
            let diff = (logits.select(1, g as i64) - alone).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{arch} member {g} (train = {train}): logits differ by {diff}");
        }
    }
}

#[test]
fn fused_members_follow_their_lone_trajectories() {
    for arch in Arch::ALL {
        fused_trajectories_match(arch);
    }
}

fn fused_trajectories_match(arch: Arch) {
    let (lone, fused_vs, fused_net) = lone_and_fused(&spec(arch));
    let mut lone_opts: Vec<Optimizer> = lone.iter().map(|(vs, _)| Optimizer::new(sgd(), vs)).collect();
    let mut fused_opt = Optimizer::new(sgd(), &fused_vs);
    for step in 0..5 {
        let data = batches(step);
        let xs: Vec<Tensor> = data.iter().map(|(x, _)| x.shallow_clone()).collect();
        let logits = fused_net.forward_t(&fused::fuse_inputs(&xs), true);
        // The members' mean losses, summed: each member's gradient is its own loss's gradient.
        let member_losses: Vec<Tensor> =
            data.iter().enumerate().map(|(g, (_, y))| logits.select(1, g as i64).cross_entropy_for_logits(y)).collect();
        fused_opt.zero_grad();
        Tensor::stack(&member_losses, 0).sum(Kind::Float).backward();
        fused_opt.step(sgd().lr);
        for (g, ((_, net), opt)) in lone.iter().zip(&mut lone_opts).enumerate() {
            let (x, y) = &data[g];
            let loss = net.forward_t(x, true).cross_entropy_for_logits(y);
            opt.zero_grad();
            loss.backward();
            opt.step(sgd().lr);
            let (alone, fused) = (loss.double_value(&[]), member_losses[g].double_value(&[]));
            assert!(
                (alone - fused).abs() < 1e-4 * alone.abs().max(1.0),
                "{arch} step {step}, member {g}: {alone} alone, {fused} fused"
            );
        }
    }
    // After the steps, every member's variables (BatchNorm statistics included) are its lone twin's.
    for (g, (vs, _)) in lone.iter().enumerate() {
        let named = vs.variables();
        for (name, value) in fused::member_variables(&fused_vs, g as i64, vs) {
            let diff = (&value - &named[&name]).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{arch} member {g}, {name}: differs by {diff}");
        }
    }
}

#[test]
fn a_group_needs_two_members() {
    let vs = nn::VarStore::new(Device::Cpu);
    for members in [0, 1] {
        let err = fused::build(&vs.root(), &spec(Arch::Cnn5), members).err().unwrap();
        assert!(err.contains("at least 2 members"), "{err}");
    }
}
