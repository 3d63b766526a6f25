//! A fused group against its members alone, on the CPU with real libtorch: the same logits, and
//! the same step under SGD with momentum and weight decay, member by member.

use super::fused;
use super::*;
use crate::numeric_checks::{relative_distance, ONE_STEP};
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
    OptimizerConfig { momentum: 0.9, weight_decay: 5e-4, ..OptimizerConfig::new(OptimizerKind::Sgd, 0.05) }
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
            let distance = relative_distance(&logits.select(1, g as i64), &alone);
            assert!(distance <= ONE_STEP, "{arch} member {g} (train = {train}): logits {distance:e} apart");
        }
    }
}

/// One SGD step with momentum and weight decay: each member's loss before and after it, and its
/// variables (BatchNorm statistics included) after it, are its lone twin's to rounding. One step
/// is where a wrong slice, rate or gradient shows; the grouped kernels sum in another order, and
/// further steps would amplify that by amounts that depend on the CPU.
#[test]
fn one_fused_step_moves_each_member_as_alone() {
    for arch in Arch::ALL {
        fused_step_matches(arch);
    }
}

fn fused_step_matches(arch: Arch) {
    let (lone, fused_vs, fused_net) = lone_and_fused(&spec(arch));
    let mut lone_opts: Vec<Optimizer> = lone.iter().map(|(vs, _)| Optimizer::new(sgd(), vs)).collect();
    let mut fused_opt = Optimizer::new(sgd(), &fused_vs);
    let data = batches(0);
    let xs: Vec<Tensor> = data.iter().map(|(x, _)| x.shallow_clone()).collect();
    // The members' mean losses, summed: each member's gradient is its own loss's gradient.
    let member_losses = |logits: &Tensor| -> Vec<Tensor> {
        data.iter().enumerate().map(|(g, (_, y))| logits.select(1, g as i64).cross_entropy_for_logits(y)).collect()
    };
    let before = member_losses(&fused_net.forward_t(&fused::fuse_inputs(&xs), true));
    fused_opt.zero_grad();
    Tensor::stack(&before, 0).sum(Kind::Float).backward();
    fused_opt.step(sgd().lr);
    let after = tch::no_grad(|| member_losses(&fused_net.forward_t(&fused::fuse_inputs(&xs), false)));
    for (g, ((_, net), opt)) in lone.iter().zip(&mut lone_opts).enumerate() {
        let (x, y) = &data[g];
        let loss = net.forward_t(x, true).cross_entropy_for_logits(y);
        opt.zero_grad();
        loss.backward();
        opt.step(sgd().lr);
        let loss_after = tch::no_grad(|| net.forward_t(x, false).cross_entropy_for_logits(y));
        for (when, alone, fused) in [("before", &loss, &before[g]), ("after", &loss_after, &after[g])] {
            let (a, f) = (alone.double_value(&[]), fused.double_value(&[]));
            assert!(
                (a - f).abs() <= ONE_STEP * a.abs().max(1.0),
                "{arch} member {g}, loss {when} the step: {a} alone, {f} fused"
            );
        }
    }
    for (g, (vs, _)) in lone.iter().enumerate() {
        let named = vs.variables();
        for (name, value) in fused::member_variables(&fused_vs, g as i64, vs) {
            let distance = relative_distance(&value, &named[&name]);
            assert!(
                distance <= ONE_STEP,
                "{arch} member {g}, {name}: {distance:e} from its lone twin's after one step"
            );
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
