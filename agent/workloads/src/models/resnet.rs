//! ImageNet-style ResNets (He et al. 2016) and ResNeXt (Xie et al. 2017) as torchvision builds them,
//! the ImageNet-LT backbones of Kang et al. 2020: ResNet-10 (one basic block per stage) and
//! ResNeXt-50 32x4d (bottlenecks [3, 4, 6, 3] with 32 groups of 4 channels). A 7x7 stride-2 stem
//! and a 3x3 max-pool, four stages of 64-512 planes, global average pooling. The output is the
//! pooled features (512 for ResNet-10, 2048 for ResNeXt-50).

use super::batch_norm2d;
use tch::nn::{self, ModuleT};
use tch::Tensor;

const PLANES: [i64; 4] = [64, 128, 256, 512];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    Basic,
    /// Bottleneck with `groups` groups of `group_width` channels per 64 planes.
    Bottleneck {
        groups: i64,
        group_width: i64,
    },
}

impl Block {
    fn expansion(self) -> i64 {
        match self {
            Block::Basic => 1,
            Block::Bottleneck { .. } => 4,
        }
    }
}

fn conv(path: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    nn::conv2d(
        path,
        c_in,
        c_out,
        k,
        nn::ConvConfig { stride, padding: k / 2, groups, bias: false, ..Default::default() },
    )
}

#[derive(Debug)]
struct Unit {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl Unit {
    fn new(path: nn::Path, block: Block, c_in: i64, planes: i64, stride: i64) -> Unit {
        let c_out = planes * block.expansion();
        let layer = |i: usize, a: i64, b: i64, k: i64, s: i64, g: i64| {
            (conv(&path / format!("conv{i}"), a, b, k, s, g), batch_norm2d(&path / format!("bn{i}"), b))
        };
        let convs = match block {
            Block::Basic => vec![layer(1, c_in, planes, 3, stride, 1), layer(2, planes, planes, 3, 1, 1)],
            Block::Bottleneck { groups, group_width } => {
                let width = planes * group_width / 64 * groups;
                vec![
                    layer(1, c_in, width, 1, 1, 1),
                    layer(2, width, width, 3, stride, groups),
                    layer(3, width, c_out, 1, 1, 1),
                ]
            }
        };
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            (conv(&path / "downsample" / 0, c_in, c_out, 1, stride, 1), batch_norm2d(&path / "downsample" / 1, c_out))
        });
        Unit { convs, downsample }
    }
}

impl ModuleT for Unit {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            h = h.apply(c).apply_t(bn, train);
            if i < last {
                h = h.relu();
            }
        }
        let shortcut = match &self.downsample {
            Some((c, bn)) => x.apply(c).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (h + shortcut).relu()
    }
}

#[derive(Debug)]
pub(crate) struct ResNet {
    stem: nn::Conv2D,
    bn1: nn::BatchNorm,
    units: Vec<Unit>,
    pub features: i64,
}

impl ResNet {
    pub(crate) fn new(path: &nn::Path, in_channels: i64, block: Block, layers: [usize; 4]) -> ResNet {
        let mut units = Vec::new();
        let mut c_in = 64;
        for (stage, (&planes, &count)) in PLANES.iter().zip(&layers).enumerate() {
            for b in 0..count {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                units.push(Unit::new(path / format!("layer{}", stage + 1) / b, block, c_in, planes, stride));
                c_in = planes * block.expansion();
            }
        }
        ResNet {
            stem: conv(path / "conv1", in_channels, 64, 7, 2, 1),
            bn1: batch_norm2d(path / "bn1", 64),
            units,
            features: c_in,
        }
    }

    pub(crate) fn resnet10(path: &nn::Path, in_channels: i64) -> ResNet {
        ResNet::new(path, in_channels, Block::Basic, [1, 1, 1, 1])
    }

    pub(crate) fn resnext50(path: &nn::Path, in_channels: i64) -> ResNet {
        ResNet::new(path, in_channels, Block::Bottleneck { groups: 32, group_width: 4 }, [3, 4, 6, 3])
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h =
            x.apply(&self.stem).apply_t(&self.bn1, train).relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for unit in &self.units {
            h = unit.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
