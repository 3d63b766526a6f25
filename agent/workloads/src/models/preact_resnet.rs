//! Pre-activation ResNet-18 (He et al. 2016, "Identity Mappings") for small images, as in the
//! PyTorch code of Nakkiran et al. 2019: 3x3 stem without max-pool, four stages of two PreActBlocks
//! with [k, 2k, 4k, 8k] channels, final BN-ReLU, global average pool. Variable names follow PyTorch.

use super::{batch_norm2d, grouped_conv, Head, ModelSpec, Trunk};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Blocks per stage; [2, 2, 2, 2] is the "18" (16 conv layers in blocks + stem + linear).
const BLOCKS_PER_STAGE: [usize; 4] = [2, 2, 2, 2];
/// Channel multiples of k and first-block strides of the four stages.
const STAGE_WIDTHS: [i64; 4] = [1, 2, 4, 8];
const STAGE_STRIDES: [i64; 4] = [1, 2, 2, 2];

/// BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity shortcut, or a 1x1 conv one when the block
/// changes the shape. The projection reads the pre-activated input, as in the reference code.
#[derive(Debug)]
struct PreActBlock {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

impl PreActBlock {
    /// `members` copies side by side (1 for one network): every layer is grouped by member.
    fn new(path: nn::Path, members: i64, c_in: i64, c_out: i64, stride: i64) -> PreActBlock {
        let shortcut = (stride != 1 || c_in != c_out).then(|| {
            // "shortcut.0": the reference wraps the projection in an nn.Sequential.
            grouped_conv(&path / "shortcut" / 0, members, c_in, c_out, 1, stride, false)
        });
        PreActBlock {
            bn1: batch_norm2d(&path / "bn1", members * c_in),
            conv1: grouped_conv(&path / "conv1", members, c_in, c_out, 3, stride, false),
            bn2: batch_norm2d(&path / "bn2", members * c_out),
            conv2: grouped_conv(&path / "conv2", members, c_out, c_out, 3, 1, false),
            shortcut,
        }
    }
}

impl ModuleT for PreActBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pre = x.apply_t(&self.bn1, train).relu();
        let shortcut = match &self.shortcut {
            Some(conv) => pre.apply(conv),
            None => x.shallow_clone(),
        };
        pre.apply(&self.conv1).apply_t(&self.bn2, train).relu().apply(&self.conv2) + shortcut
    }
}

#[derive(Debug)]
pub(super) struct PreActResNet18 {
    trunk: PreActTrunk,
    head: Head,
}

/// The stem, the four stages and the final BN-ReLU, without the pool and the head.
#[derive(Debug)]
pub(super) struct PreActTrunk {
    conv1: nn::Conv2D,
    blocks: Vec<PreActBlock>,
    bn: nn::BatchNorm,
    channels: i64,
}

impl PreActResNet18 {
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec) -> PreActResNet18 {
        PreActResNet18::fused(path, spec, 1)
    }

    /// `members` networks of `spec` trained as one (horizontal fusion): convolutions grouped by
    /// member, BatchNorm per channel (so per member), one head per member. The input is the
    /// members' batches side by side on the channel axis, [B, members * C, H, W]; the logits are
    /// [B, members, classes]. Variable names are those of one network, so member g's slice of each
    /// variable lines up with a lone network's variable of the same name.
    pub(super) fn fused(path: &nn::Path, spec: &ModelSpec, members: i64) -> PreActResNet18 {
        let trunk = PreActTrunk::new(path, spec, members);
        let head = Head::new(path / "linear", members, trunk.channels / members, spec.classes, spec.dropout);
        PreActResNet18 { trunk, head }
    }
}

impl PreActTrunk {
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec, members: i64) -> PreActTrunk {
        let k = spec.width;
        let conv1 = grouped_conv(path / "conv1", members, spec.in_channels, k, 3, 1, false);
        let mut blocks = Vec::new();
        let mut c_in = k;
        for (stage, ((&count, &mult), &stride)) in
            BLOCKS_PER_STAGE.iter().zip(&STAGE_WIDTHS).zip(&STAGE_STRIDES).enumerate()
        {
            let c_out = mult * k;
            for i in 0..count {
                let s = if i == 0 { stride } else { 1 };
                let block_path = path / format!("layer{}", stage + 1) / i;
                blocks.push(PreActBlock::new(block_path, members, c_in, c_out, s));
                c_in = c_out;
            }
        }
        PreActTrunk { conv1, blocks, bn: batch_norm2d(path / "bn", members * c_in), channels: members * c_in }
    }
}

impl Trunk for PreActTrunk {
    fn feature_map(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.blocks.iter().fold(x.apply(&self.conv1), |h, block| h.apply_t(block, train));
        h.apply_t(&self.bn, train).relu()
    }

    /// Adaptive pooling instead of the reference's avg_pool2d(4): identical at 32 px, and any
    /// image size ends in one feature vector.
    fn pool(&self, map: &Tensor) -> Tensor {
        map.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn channels(&self) -> i64 {
        self.channels
    }
}

impl ModuleT for PreActResNet18 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(&self.trunk.pool(&self.trunk.feature_map(x, train)), train)
    }
}
