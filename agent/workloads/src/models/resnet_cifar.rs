//! ResNet-32 for 32 px images (He et al. 2016, section 4.2), the CIFAR-LT backbone of the
//! long-tail literature (Cao et al. 2019): a 3x3 stem of 16 channels, three stages of five basic
//! blocks with 16, 32 and 64 channels, parameter-free shortcuts that subsample and zero-pad
//! channels (option A), global average pooling. The output is the 64 pooled features.
//!
//! `members` copies side by side (horizontal fusion, `models::fused`): convolutions grouped by
//! member, BatchNorm per channel, each member's shortcut padded within its own channels; the
//! output is then the members' features one after another, [B, members * 64].

use super::{batch_norm2d, grouped_conv};
use tch::nn::{self, ModuleT};
use tch::Tensor;

const BLOCKS_PER_STAGE: usize = 5;
const STAGE_CHANNELS: [i64; 3] = [16, 32, 64];
pub const FEATURES: i64 = 64;

#[derive(Debug)]
struct BasicBlock {
    members: i64,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// Channels to add on each side of the shortcut when the block widens; 0 = identity.
    pad: i64,
    stride: i64,
}

impl BasicBlock {
    fn new(path: nn::Path, members: i64, c_in: i64, c_out: i64, stride: i64) -> BasicBlock {
        BasicBlock {
            members,
            conv1: grouped_conv(&path / "conv1", members, c_in, c_out, 3, stride, false),
            bn1: batch_norm2d(&path / "bn1", members * c_out),
            conv2: grouped_conv(&path / "conv2", members, c_out, c_out, 3, 1, false),
            bn2: batch_norm2d(&path / "bn2", members * c_out),
            pad: (c_out - c_in) / 2,
            stride,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu().apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = if self.stride == 1 && self.pad == 0 {
            x.shallow_clone()
        } else {
            let sub = x.slice(2, 0, None, self.stride).slice(3, 0, None, self.stride);
            let (b, c, h, w) = sub.size4().expect("a 4-d feature map");
            // Zero channels before and after each member's own: on [B, members, C, H, W],
            // (W left, W right, H top, H bottom, C front, C back).
            sub.reshape([b, self.members, c / self.members, h, w])
                .constant_pad_nd([0, 0, 0, 0, self.pad, self.pad])
                .reshape([b, c + 2 * self.pad * self.members, h, w])
        };
        (out + shortcut).relu()
    }
}

#[derive(Debug)]
pub(crate) struct ResNet32 {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet32 {
    pub(crate) fn new(path: &nn::Path, in_channels: i64) -> ResNet32 {
        ResNet32::fused(path, in_channels, 1)
    }

    /// `members` networks side by side (1: one network); the input is their images side by side
    /// on the channel axis, [B, members * in_channels, H, W].
    pub(crate) fn fused(path: &nn::Path, in_channels: i64, members: i64) -> ResNet32 {
        let mut blocks = Vec::new();
        let mut c_in = STAGE_CHANNELS[0];
        for (stage, &c_out) in STAGE_CHANNELS.iter().enumerate() {
            for b in 0..BLOCKS_PER_STAGE {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(path / format!("layer{}", stage + 1) / b, members, c_in, c_out, stride));
                c_in = c_out;
            }
        }
        ResNet32 {
            conv1: grouped_conv(path / "conv1", members, in_channels, STAGE_CHANNELS[0], 3, 1, false),
            bn1: batch_norm2d(path / "bn1", members * STAGE_CHANNELS[0]),
            blocks,
        }
    }
}

impl ModuleT for ResNet32 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
