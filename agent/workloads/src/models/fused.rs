//! Horizontal fusion (Wang et al., HFTA, MLSys 2021): G networks of one architecture and width,
//! trained as one network whose layers are grouped by member. On a GPU one fused step launches
//! the kernels of one network for the work of G, which is what a launch-bound width sweep needs.
//!
//! Each member keeps the network it would have had alone: `load_member` copies a lone network's
//! variables into the member's slice, `member_variables` reads them back out, and the inputs and
//! logits carry a member axis. The optimizer updates elementwise, so member g's slice follows the
//! same trajectory as the lone network under the same data; global gradient clipping, which would
//! couple the members, is not for fused groups.

use super::{cnn5::Cnn5, mlp::Mlp, preact_resnet::PreActResNet18, Arch, ModelSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Builds `members` fused networks of `spec` under `path`. Input: the members' batches side by
/// side on the channel axis ([`fuse_inputs`]); output: logits [B, members, classes].
pub fn build(path: &nn::Path, spec: &ModelSpec, members: i64) -> Result<Box<dyn ModuleT + Send>, String> {
    spec.validate()?;
    if members < 2 {
        return Err(format!("fuse: expected at least 2 members, got {members}"));
    }
    match spec.arch {
        Arch::PreactResnet18 => Ok(Box::new(PreActResNet18::fused(path, spec, members))),
        Arch::Cnn5 => Ok(Box::new(Cnn5::fused(path, spec, members))),
        Arch::Mlp => Ok(Box::new(Mlp::fused(path, spec, members))),
    }
}

/// The members' batches, each [B, C, H, W], as one fused input [B, members * C, H, W].
pub fn fuse_inputs(batches: &[Tensor]) -> Tensor {
    Tensor::cat(batches, 1)
}

/// Member g's slice of a fused variable (or of optimizer state shaped like one) whose lone
/// counterpart has shape `lone`: the grouped layers stack members along the first axis, the
/// grouped head along a leading member axis. A view: copying into it writes the fused tensor.
pub fn member_slice(fused: &Tensor, lone: &[i64], g: i64) -> Tensor {
    if fused.dim() == lone.len() + 1 {
        fused.select(0, g)
    } else {
        fused.narrow(0, g * lone[0], lone[0])
    }
}

/// Copies every variable of a lone network (same spec, built by `models::build`) into member
/// `g` of a fused one: parameters and BatchNorm statistics alike.
pub fn load_member(fused: &nn::VarStore, g: i64, lone: &nn::VarStore) -> Result<(), String> {
    let fused_vars = fused.variables();
    tch::no_grad(|| {
        for (name, var) in lone.variables() {
            let target = fused_vars.get(&name).ok_or_else(|| format!("fused network has no variable {name}"))?;
            member_slice(target, &var.size(), g).copy_(&var.to_device(target.device()));
        }
        Ok(())
    })
}

/// Member `g`'s variables as a lone network would name and shape them (copies), e.g. for its own
/// checkpoint.
pub fn member_variables(fused: &nn::VarStore, g: i64, lone: &nn::VarStore) -> Vec<(String, Tensor)> {
    let fused_vars = fused.variables();
    lone.variables()
        .into_iter()
        .map(|(name, var)| {
            let slice = member_slice(&fused_vars[&name], &var.size(), g).copy();
            (name, slice.reshape(var.size()))
        })
        .collect()
}
