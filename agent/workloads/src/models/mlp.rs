//! The 2-layer MLP baseline on flattened images: C*H*W -> k (ReLU) -> classes. No BatchNorm, so
//! `train` only switches the dropout before the output layer.

use super::{Head, ModelSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
pub(super) struct Mlp {
    fc1: nn::Linear,
    head: Head,
}

impl Mlp {
    /// `spec` has been validated, so the input size does not overflow.
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec) -> Mlp {
        let inputs = spec.in_channels * spec.image_size * spec.image_size;
        Mlp {
            fc1: nn::linear(path / "fc1", inputs, spec.width, Default::default()),
            head: Head::new(path / "fc2", spec.width, spec.classes, spec.dropout),
        }
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let hidden = x.flatten(1, -1).apply(&self.fc1).relu();
        self.head.forward_t(&hidden, train)
    }
}
