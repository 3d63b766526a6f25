//! The 5-layer CNN of Nakkiran et al. 2019 (`make_cnn` in their code): four [conv3x3 -> BN -> ReLU]
//! layers of [k, 2k, 4k, 8k] channels, max-pooling by 1, 2, 2, 8 after them, and one linear layer.

use super::{batch_norm2d, grouped_conv, Head, ModelSpec, Trunk};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Channel multiples of k of the four conv layers.
const LAYER_WIDTHS: [i64; 4] = [1, 2, 4, 8];

#[derive(Debug)]
pub(super) struct Cnn5 {
    trunk: Cnn5Trunk,
    head: Head,
}

/// The four conv layers without the global pool and the head.
#[derive(Debug)]
pub(super) struct Cnn5Trunk {
    layers: Vec<(nn::Conv2D, nn::BatchNorm)>,
}

impl Cnn5 {
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec) -> Cnn5 {
        Cnn5::fused(path, spec, 1)
    }

    /// `members` networks of `spec` as one (horizontal fusion, `models::fused`): convolutions
    /// grouped by member, BatchNorm per channel, one head per member; `members` = 1 is one network.
    pub(super) fn fused(path: &nn::Path, spec: &ModelSpec, members: i64) -> Cnn5 {
        let trunk = Cnn5Trunk::new(path, spec, members);
        let head = Head::new(path / "fc", members, trunk.channels() / members, spec.classes, spec.dropout);
        Cnn5 { trunk, head }
    }
}

impl Cnn5Trunk {
    pub(super) fn new(path: &nn::Path, spec: &ModelSpec, members: i64) -> Cnn5Trunk {
        let mut c_in = spec.in_channels;
        let layers = LAYER_WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &mult)| {
                let c_out = mult * spec.width;
                // The reference keeps the conv bias even though BN follows; so do we.
                let conv = grouped_conv(path / format!("conv{i}"), members, c_in, c_out, 3, 1, true);
                let bn = batch_norm2d(path / format!("bn{i}"), members * c_out);
                c_in = c_out;
                (conv, bn)
            })
            .collect();
        Cnn5Trunk { layers }
    }
}

impl Trunk for Cnn5Trunk {
    fn feature_map(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, (conv, bn)) in self.layers.iter().enumerate() {
            h = h.apply(conv).apply_t(bn, train).relu();
            if i == 1 || i == 2 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        h
    }

    /// The reference pools by 2 then by 4, which at 32 px is a max over the whole 8x8 map; a
    /// global max pool is the same there and fits any image size.
    fn pool(&self, map: &Tensor) -> Tensor {
        map.adaptive_max_pool2d([1, 1]).0.flatten(1, -1)
    }

    fn channels(&self) -> i64 {
        self.layers.last().expect("four conv layers").0.ws.size()[0]
    }
}

impl ModuleT for Cnn5 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(&self.trunk.pool(&self.trunk.feature_map(x, train)), train)
    }
}
