//! The image classifiers of the double-descent study (Nakkiran et al. 2019): which architectures
//! exist, the one spec that sizes them, and `build`, the only way the harness makes a network.
//! Each architecture lives in its own file; the layers they share (BatchNorm, the head) live here.

mod cnn5;
pub mod dense;
pub mod fused;
mod mlp;
mod preact_resnet;
pub(crate) mod resnet;
pub(crate) mod resnet_cifar;
pub mod transformer;

use std::fmt;
use std::str::FromStr;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The architectures a trial can name; `FromStr`/`Display` use the names of sweep files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    PreactResnet18,
    Cnn5,
    Mlp,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::PreactResnet18, Arch::Cnn5, Arch::Mlp];

    /// The name a sweep file uses for this architecture.
    pub fn name(self) -> &'static str {
        match self {
            Arch::PreactResnet18 => "preact_resnet18",
            Arch::Cnn5 => "cnn5",
            Arch::Mlp => "mlp",
        }
    }

    /// The smallest image side the network is meant for: the convolutional nets halve the side
    /// three times, so 8 px is where their last stage is down to one pixel.
    pub fn min_image_size(self) -> i64 {
        match self {
            Arch::PreactResnet18 | Arch::Cnn5 => 8,
            Arch::Mlp => 1,
        }
    }

    /// Whether the network trains channels-last on `device`: it helps convolutions on GPUs
    /// (tensor cores); on the CPU, and for the MLP, it only costs copies.
    pub fn channels_last_on(self, device: tch::Device) -> bool {
        device.is_cuda() && self != Arch::Mlp
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
            format!("arch: expected one of {}, got \"{s}\"", names.join(", "))
        })
    }
}

/// Everything that sizes a network. `width` is the paper's k: the conv nets use [k, 2k, 4k, 8k]
/// channels, the MLP k hidden units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    pub arch: Arch,
    pub width: i64,
    pub in_channels: i64,
    pub image_size: i64,
    pub classes: i64,
    /// Probability of dropping a unit of the features fed to the final linear layer; 0 = none.
    pub dropout: f64,
}

impl ModelSpec {
    /// Checks every field, naming the first bad one, so a bad trial fails before any allocation.
    pub fn validate(&self) -> Result<(), String> {
        if self.width < 1 {
            return Err(format!("width: expected an integer >= 1, got {}", self.width));
        }
        if self.in_channels < 1 {
            return Err(format!("in_channels: expected an integer >= 1, got {}", self.in_channels));
        }
        let min = self.arch.min_image_size();
        if self.image_size < min {
            return Err(format!(
                "image_size: expected an integer >= {min} for arch {}, got {}",
                self.arch, self.image_size
            ));
        }
        // The MLP's input layer has C*H*W columns; refuse sizes whose count overflows.
        if self.image_size.checked_mul(self.image_size).and_then(|hw| hw.checked_mul(self.in_channels)).is_none() {
            return Err(format!("image_size: {} px with {} channels is too large", self.image_size, self.in_channels));
        }
        if self.classes < 2 {
            return Err(format!("classes: expected an integer >= 2, got {}", self.classes));
        }
        // p = 1 would zero every feature and make the rescaling 1/(1-p) infinite.
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: expected a probability in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// Builds the network's variables under `path` and returns it as a module: input f32 [B, C, H, W],
/// output logits [B, classes]. `train` in forward_t switches BatchNorm statistics and dropout.
/// Variables draw from libtorch's global generator, so `tch::manual_seed` before `build` fixes them.
pub fn build(path: &nn::Path, spec: &ModelSpec) -> Result<Box<dyn ModuleT + Send>, String> {
    spec.validate()?;
    Ok(match spec.arch {
        Arch::PreactResnet18 => Box::new(preact_resnet::PreActResNet18::new(path, spec)),
        Arch::Cnn5 => Box::new(cnn5::Cnn5::new(path, spec)),
        Arch::Mlp => Box::new(mlp::Mlp::new(path, spec)),
    })
}

/// A convolutional network of [`Arch`] without its pool and head: what the multimodal workload
/// encodes images with.
pub trait Trunk: std::fmt::Debug + Send {
    /// Images f32 [B, C, H, W] to the feature map the network pools, [B, channels, h, w].
    fn feature_map(&self, x: &Tensor, train: bool) -> Tensor;
    /// The map pooled as the network pools it before its head: [B, channels].
    fn pool(&self, map: &Tensor) -> Tensor;
    fn channels(&self) -> i64;
}

/// The trunk of `spec`'s network under `path`, its variables named as the whole network's are;
/// `spec.classes` and `spec.dropout` are not used. The MLP has no feature map and is refused.
pub fn trunk(path: &nn::Path, spec: &ModelSpec) -> Result<Box<dyn Trunk>, String> {
    spec.validate()?;
    match spec.arch {
        Arch::PreactResnet18 => Ok(Box::new(preact_resnet::PreActTrunk::new(path, spec, 1))),
        Arch::Cnn5 => Ok(Box::new(cnn5::Cnn5Trunk::new(path, spec, 1))),
        Arch::Mlp => {
            Err(format!("arch: expected a convolutional network ({}, {}), got mlp", Arch::Cnn5, Arch::PreactResnet18))
        }
    }
}

/// Trainable scalars in a var store, as `sum(p.numel() for p in model.parameters())` counts them:
/// BatchNorm running statistics are buffers, not parameters.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Re-lays every 4-d variable (conv weights) out channels-last, NHWC strides under NCHW sizes.
///
/// tch 0.24 exposes no memory-format argument, but libtorch infers the format from strides, and
/// `permute -> contiguous -> permute back` yields exactly those strides. `set_data` swaps the
/// storage under each variable in place, so modules and optimizers holding it see the new layout;
/// call it before building the optimizer so its state is created in the same layout. Inputs must
/// be converted the same way (`to_channels_last_tensor`) for convolutions to pick NHWC kernels.
pub fn to_channels_last(vs: &mut nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                let relaid = to_channels_last_tensor(&var);
                var.set_data(&relaid);
            }
        }
    });
}

/// A copy of a 4-d tensor with channels-last strides; same sizes and values.
pub fn to_channels_last_tensor(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// BatchNorm as PyTorch initialises it (weight 1, bias 0); tch's default draws the weight from
/// U(0, 1), which would shrink every pre-activation by a random factor at the start.
fn batch_norm2d(path: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(path, channels, nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), ..Default::default() })
}

/// `members` side-by-side convolutions of `c_in` to `c_out` channels, one per member of a fused
/// group (`members` = 1: an ordinary convolution). Padding keeps the side at stride 1.
fn grouped_conv(path: nn::Path, members: i64, c_in: i64, c_out: i64, k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    let config = nn::ConvConfig { stride, padding: k / 2, bias, groups: members, ..Default::default() };
    nn::conv2d(path, members * c_in, members * c_out, k, config)
}

/// `members` linear maps side by side, one per member of a fused group, as one batched matmul:
/// `weight` [members, out, in] and `bias` [members, out], so member g's slice has the shapes of an
/// `nn::Linear`'s weight and bias.
#[derive(Debug)]
pub(crate) struct GroupedLinear {
    weight: Tensor,
    bias: Tensor,
}

impl GroupedLinear {
    pub(crate) fn new(path: nn::Path, members: i64, inputs: i64, outputs: i64) -> GroupedLinear {
        let (weight, bias) = grouped_linear_vars(&path, members, inputs, outputs, true);
        GroupedLinear { weight, bias: bias.expect("a bias was asked for") }
    }

    pub(crate) fn members(&self) -> i64 {
        self.weight.size()[0]
    }

    /// [B, members, in] -> [B, members, out]: member g's inputs through member g's map.
    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        grouped_matmul(x, &self.weight) + &self.bias
    }

    /// The members' inputs side by side, [B, members * in, ...] (member-major), to their outputs
    /// side by side, [B, members * out].
    pub(crate) fn forward_side_by_side(&self, x: &Tensor) -> Tensor {
        self.forward(&x.reshape([x.size()[0], self.members(), -1])).flatten(1, -1)
    }
}

/// The variables of `members` linear maps of `inputs` to `outputs`, weight [members, outputs,
/// inputs] and (with `bias`) bias [members, outputs] under `path`, initialised like `nn::linear`
/// (uniform in ±1/sqrt(inputs)): member g's slices have the shapes of an `nn::Linear`'s.
pub(crate) fn grouped_linear_vars(
    path: &nn::Path,
    members: i64,
    inputs: i64,
    outputs: i64,
    bias: bool,
) -> (Tensor, Option<Tensor>) {
    let bound = 1.0 / (inputs as f64).sqrt();
    let init = nn::Init::Uniform { lo: -bound, up: bound };
    let weight = path.var("weight", &[members, outputs, inputs], init);
    (weight, bias.then(|| path.var("bias", &[members, outputs], init)))
}

/// Member by member `x W^T`: x [B, G, in] against weights [G, out, in] gives [B, G, out].
pub(crate) fn grouped_matmul(x: &Tensor, weight: &Tensor) -> Tensor {
    // [B, G, in] -> [G, B, in] x [G, in, out] -> [G, B, out] -> [B, G, out].
    x.transpose(0, 1).bmm(&weight.transpose(1, 2)).transpose(0, 1)
}

/// The last layer of every architecture: dropout on the features, then a linear map to logits.
/// In a fused group, one linear map per member, as a batched matmul.
#[derive(Debug)]
struct Head {
    dropout: f64,
    map: HeadMap,
}

#[derive(Debug)]
enum HeadMap {
    Linear(nn::Linear),
    Grouped(GroupedLinear),
}

impl Head {
    /// One head (`members` = 1) or one per member of a fused group.
    fn new(path: nn::Path, members: i64, features: i64, classes: i64, dropout: f64) -> Head {
        let map = if members == 1 {
            HeadMap::Linear(nn::linear(path, features, classes, Default::default()))
        } else {
            HeadMap::Grouped(GroupedLinear::new(path, members, features, classes))
        };
        Head { dropout, map }
    }

    /// `features` is [B, F] ([B, members * F] when grouped); dropout acts only in training (and
    /// is skipped entirely at p = 0). Logits are [B, classes] ([B, members, classes] when grouped).
    fn forward_t(&self, features: &Tensor, train: bool) -> Tensor {
        let features =
            if self.dropout > 0.0 && train { features.dropout(self.dropout, true) } else { features.shallow_clone() };
        match &self.map {
            HeadMap::Linear(linear) => features.apply(linear),
            HeadMap::Grouped(map) => map.forward(&features.view([features.size()[0], map.members(), -1])),
        }
    }
}

#[cfg(test)]
mod fused_tests;
#[cfg(test)]
mod tests;
