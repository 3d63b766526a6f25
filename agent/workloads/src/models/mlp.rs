//! The 2-layer MLP baseline on flattened images: C*H*W -> k (ReLU) -> classes. No BatchNorm, so
//! `train` only switches the dropout before the output layer.

use super::{GroupedLinear, Head, ModelSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub(super) struct Mlp {
    hidden: Hidden,
    head: Head,
}

/// The first layer: one linear map, or one per member of a fused group.
#[derive(Debug)]
enum Hidden {
    Linear(nn::Linear),
    Grouped(GroupedLinear),
}

impl Mlp {
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec) -> Mlp {
        Mlp::fused(path, spec, 1)
    }

    /// `members` MLPs of `spec` as one (horizontal fusion, `models::fused`): both layers are
    /// batched matmuls over the members. Member g's input is channels g*C..(g+1)*C of the fused
    /// input. `spec` has been validated, so the input size does not overflow.
    pub(super) fn fused(path: &nn::Path, spec: &ModelSpec, members: i64) -> Mlp {
        let inputs = spec.in_channels * spec.image_size * spec.image_size;
        let hidden = if members == 1 {
            Hidden::Linear(nn::linear(path / "fc1", inputs, spec.width, Default::default()))
        } else {
            Hidden::Grouped(GroupedLinear::new(path / "fc1", members, inputs, spec.width))
        };
        Mlp { hidden, head: Head::new(path / "fc2", members, spec.width, spec.classes, spec.dropout) }
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let hidden = match &self.hidden {
            Hidden::Linear(linear) => x.flatten(1, -1).apply(linear),
            // [B, G*C, H, W] -> [B, G*k], member-major as the grouped head reads it.
            Hidden::Grouped(map) => map.forward_side_by_side(x),
        };
        self.head.forward_t(&hidden.relu(), train)
    }
}
