//! The long-tail classifier, split where decoupled training needs it: a backbone that maps inputs
//! to features, and a linear (or cosine) classifier on top. The classifier can be retrained on
//! frozen features (cRT) and tau-normalised at evaluation (Kang et al. 2020).

use crate::models::resnet::ResNet;
use crate::models::resnet_cifar::{self, ResNet32};
use crate::models::{grouped_linear_vars, grouped_matmul, GroupedLinear};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backbone {
    Resnet32,
    Resnet10,
    Resnext50,
    /// One hidden ReLU layer of `hidden` units on the flattened input.
    Mlp,
    /// The flattened input itself: the classifier is a linear model.
    Linear,
}

impl Backbone {
    const ALL: [(Backbone, &'static str); 5] = [
        (Backbone::Resnet32, "resnet32"),
        (Backbone::Resnet10, "resnet10"),
        (Backbone::Resnext50, "resnext50"),
        (Backbone::Mlp, "mlp"),
        (Backbone::Linear, "linear"),
    ];

    fn name(self) -> &'static str {
        Backbone::ALL.iter().find(|(b, _)| *b == self).map(|(_, n)| *n).expect("every backbone is named")
    }

    pub fn parse(s: &str) -> Result<Backbone, String> {
        Backbone::ALL.iter().find(|(_, n)| *n == s).map(|(b, _)| *b).ok_or_else(|| {
            let names: Vec<String> = Backbone::ALL.iter().map(|(_, n)| format!("\"{n}\"")).collect();
            format!("expected one of {}, got \"{s}\"", names.join(", "))
        })
    }

    /// Builds the backbone under `path` for inputs [B, c, h, w]; returns it and its feature count.
    pub fn build(self, path: &nn::Path, (c, h, w): (i64, i64, i64), hidden: i64) -> (Box<dyn ModuleT + Send>, i64) {
        match self {
            Backbone::Resnet32 => (Box::new(ResNet32::new(path, c)), resnet_cifar::FEATURES),
            Backbone::Resnet10 => {
                let net = ResNet::resnet10(path, c);
                let features = net.features;
                (Box::new(net), features)
            }
            Backbone::Resnext50 => {
                let net = ResNet::resnext50(path, c);
                let features = net.features;
                (Box::new(net), features)
            }
            Backbone::Mlp => {
                let fc = nn::linear(path / "fc1", c * h * w, hidden, Default::default());
                (Box::new(nn::func_t(move |x, _| x.flatten(1, -1).apply(&fc).relu())), hidden)
            }
            Backbone::Linear => (Box::new(nn::func_t(|x, _| x.flatten(1, -1))), c * h * w),
        }
    }

    /// `members` backbones side by side (horizontal fusion, `models::fused`) for inputs
    /// [B, members * c, h, w]: the members' features one after another, [B, members * features],
    /// with each member's variables a slice of the fused ones of the same name. Returns the
    /// feature count of one member. The ImageNet-LT backbones do not fuse.
    pub fn build_fused(
        self,
        path: &nn::Path,
        (c, h, w): (i64, i64, i64),
        hidden: i64,
        members: i64,
    ) -> Result<(Box<dyn ModuleT + Send>, i64), String> {
        Ok(match self {
            Backbone::Resnet32 => (Box::new(ResNet32::fused(path, c, members)), resnet_cifar::FEATURES),
            Backbone::Mlp => {
                let fc = GroupedLinear::new(path / "fc1", members, c * h * w, hidden);
                (Box::new(nn::func_t(move |x, _| fc.forward_side_by_side(x).relu())), hidden)
            }
            // Member-major channels flatten to member-major features.
            Backbone::Linear => (Box::new(nn::func_t(|x, _| x.flatten(1, -1))), c * h * w),
            Backbone::Resnet10 | Backbone::Resnext50 => {
                return Err(format!("model: `{}` does not fuse (resnet32, mlp and linear do)", self.name()));
            }
        })
    }
}

/// Logits from features: `weight` [C, D] and `bias` [C] (none for a cosine classifier, whose
/// logits are cosines between normalised features and normalised class weights). In a fused group
/// (`fused`), one classifier per member: `weight` [G, C, D] and `bias` [G, C], so member g's slice
/// has a lone classifier's shapes.
#[derive(Debug)]
pub struct Classifier {
    weight: Tensor,
    bias: Option<Tensor>,
    cosine: bool,
}

impl Classifier {
    pub fn new(path: &nn::Path, features: i64, classes: i64, cosine: bool) -> Classifier {
        let linear = nn::linear(path, features, classes, nn::LinearConfig { bias: !cosine, ..Default::default() });
        Classifier { weight: linear.ws, bias: linear.bs, cosine }
    }

    /// `members` classifiers, initialised uniformly in ±1/sqrt(features) (each member's is then
    /// set from its lone network).
    pub fn fused(path: &nn::Path, members: i64, features: i64, classes: i64, cosine: bool) -> Classifier {
        let (weight, bias) = grouped_linear_vars(path, members, features, classes, !cosine);
        Classifier { weight, bias, cosine }
    }

    /// `tau_norm` > 0 rescales each class's weights to w_c / |w_c|^tau and drops the bias.
    /// Features are [B, D], or [B, G * D] for a fused group, whose logits are [B, G, C].
    pub fn forward(&self, features: &Tensor, tau_norm: f64) -> Tensor {
        let grouped = self.weight.dim() == 3;
        let features = if grouped {
            features.reshape([features.size()[0], self.weight.size()[0], -1])
        } else {
            features.shallow_clone()
        };
        // [B, D] x [C, D]^T, or member by member [B, G, D] x [G, C, D]^T -> [B, G, C].
        let map = |f: &Tensor, w: &Tensor| if grouped { grouped_matmul(f, w) } else { f.matmul(&w.tr()) };
        if self.cosine {
            return map(&normalise(&features), &normalise(&self.weight));
        }
        if tau_norm > 0.0 {
            let norms = self.weight.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
            return map(&features, &(&self.weight / norms.pow_tensor_scalar(tau_norm)));
        }
        let logits = map(&features, &self.weight);
        match &self.bias {
            Some(b) => logits + b,
            None => logits,
        }
    }
}

/// Rows (the last axis) scaled to unit L2 norm.
fn normalise(t: &Tensor) -> Tensor {
    t / t.to_kind(Kind::Float).norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12).to_kind(t.kind())
}

/// Backbone and classifier as one module.
#[derive(Debug)]
pub struct Network {
    pub backbone: Box<dyn ModuleT + Send>,
    pub classifier: Classifier,
    /// The backbone runs in evaluation mode without gradients (the cRT stage).
    pub frozen_backbone: bool,
    /// Tau-normalisation of the classifier at evaluation; 0 = off.
    pub tau_norm: f64,
}

impl ModuleT for Network {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let features = if self.frozen_backbone {
            tch::no_grad(|| self.backbone.forward_t(x, false))
        } else {
            self.backbone.forward_t(x, train)
        };
        self.classifier.forward(&features, if train { 0.0 } else { self.tau_norm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn backbones_produce_their_feature_counts() {
        let _guard = crate::torch_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        for (backbone, input, features) in [
            (Backbone::Resnet32, [2, 3, 32, 32], 64),
            (Backbone::Resnet10, [2, 3, 32, 32], 512),
            (Backbone::Resnext50, [2, 3, 32, 32], 2048),
            (Backbone::Mlp, [2, 1, 1, 8], 5),
            (Backbone::Linear, [2, 1, 1, 8], 8),
        ] {
            let (net, d) = backbone.build(&(vs.root() / format!("{backbone:?}")), (input[1], input[2], input[3]), 5);
            assert_eq!(d, features, "{backbone:?}");
            let out = net.forward_t(&Tensor::randn(input, (Kind::Float, Device::Cpu)), true);
            assert_eq!(out.size(), [2, features], "{backbone:?}");
        }
        // ResNet-32: 0.46 M parameters, as published (He et al. 2016, table 6).
        let vs32 = nn::VarStore::new(Device::Cpu);
        Backbone::Resnet32.build(&vs32.root(), (3, 32, 32), 1);
        let count = crate::models::parameter_count(&vs32);
        assert!((460_000..470_000).contains(&count), "{count}");
        // ResNeXt-50 32x4d without its 1000-way classifier: 25.03 M - 2.05 M = 22.98 M.
        let vsx = nn::VarStore::new(Device::Cpu);
        Backbone::Resnext50.build(&vsx.root(), (3, 224, 224), 1);
        assert_eq!(crate::models::parameter_count(&vsx), 22_979_904);
    }

    /// A network of 8x8 RGB images and 5 classes (`members` = 1: alone, else fused), with a cosine
    /// or a linear classifier.
    fn network(vs: &nn::VarStore, backbone: Backbone, members: i64, cosine: bool) -> Network {
        let (shape, path) = ((3, 8, 8), vs.root() / "backbone");
        let (net, d) = if members == 1 {
            backbone.build(&path, shape, 6)
        } else {
            backbone.build_fused(&path, shape, 6, members).unwrap()
        };
        let path = vs.root() / "classifier";
        let classifier = if members == 1 {
            Classifier::new(&path, d, 5, cosine)
        } else {
            Classifier::fused(&path, members, d, 5, cosine)
        };
        Network { backbone: net, classifier, frozen_backbone: false, tau_norm: 0.7 }
    }

    /// `members` networks alone (from seeds `seed`, `seed` + 1, ...) and fused, each member's
    /// slice holding its lone twin's variables.
    fn lone_and_fused(
        backbone: Backbone,
        cosine: bool,
        members: i64,
        seed: i64,
    ) -> (Vec<(nn::VarStore, Network)>, nn::VarStore, Network) {
        let lone: Vec<_> = (0..members)
            .map(|g| {
                tch::manual_seed(seed + g);
                let vs = nn::VarStore::new(Device::Cpu);
                let net = network(&vs, backbone, 1, cosine);
                (vs, net)
            })
            .collect();
        let fused_vs = nn::VarStore::new(Device::Cpu);
        let fused_net = network(&fused_vs, backbone, members, cosine);
        for (g, (vs, _)) in lone.iter().enumerate() {
            crate::models::fused::load_member(&fused_vs, g as i64, vs).unwrap();
        }
        (lone, fused_vs, fused_net)
    }

    /// Three members alone (from seeds 20, 21, 22) and fused, for every backbone that fuses and
    /// both classifiers: the same logits member by member, in training and at evaluation, with
    /// and without tau-normalisation; and the ImageNet-LT backbones refused.
    #[test]
    fn fused_networks_give_each_members_logits() {
        const G: i64 = 3;
        let _guard = crate::torch_rng_lock();
        for backbone in [Backbone::Resnet32, Backbone::Mlp, Backbone::Linear] {
            for cosine in [false, true] {
                let (lone, _vs, fused_net) = lone_and_fused(backbone, cosine, G, 20);
                let xs: Vec<Tensor> = (0..G).map(|_| Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu))).collect();
                for train in [true, false] {
                    let logits = fused_net.forward_t(&crate::models::fused::fuse_inputs(&xs), train);
                    assert_eq!(logits.size(), [4, G, 5]);
                    for (g, (_, net)) in lone.iter().enumerate() {
                        let alone = net.forward_t(&xs[g], train);
                        let scale = alone.abs().max().double_value(&[]).max(1.0);
                        let diff = (logits.select(1, g as i64) - alone).abs().max().double_value(&[]) / scale;
                        assert!(diff < 1e-5, "{backbone:?} cosine {cosine} train {train} member {g}: {diff}");
                    }
                }
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        for backbone in [Backbone::Resnet10, Backbone::Resnext50] {
            let err = backbone.build_fused(&vs.root(), (3, 32, 32), 1, 2).err().unwrap();
            assert!(err.contains("does not fuse"), "{err}");
        }
    }

    /// One SGD step (momentum, weight decay) of ResNet-32 with a cosine classifier: each fused
    /// member's loss and variables after it are its lone twin's to rounding (see
    /// `numeric_checks`: further steps would amplify the grouped kernels' rounding).
    #[test]
    fn one_fused_resnet32_step_moves_each_member_as_alone() {
        use crate::numeric_checks::{relative_distance, ONE_STEP};
        use crate::optim::{Optimizer, OptimizerConfig};
        const G: i64 = 2;
        let _guard = crate::torch_rng_lock();
        let sgd = serde_json::json!({"name": "sgd", "lr": 0.1, "momentum": 0.9});
        let cfg = OptimizerConfig::from_params(sgd.as_object().unwrap(), 5e-4).unwrap();
        // ResNet-32 with the cosine classifier (tau-normalisation acts at evaluation only).
        let (lone, fused_vs, fused_net) = lone_and_fused(Backbone::Resnet32, true, G, 30);
        let mut lone_opts: Vec<Optimizer> = lone.iter().map(|(vs, _)| Optimizer::new(cfg.clone(), vs)).collect();
        let mut fused_opt = Optimizer::new(cfg.clone(), &fused_vs);
        let data: Vec<(Tensor, Tensor)> = (0..G)
            .map(|_| {
                (
                    Tensor::randn([6, 3, 8, 8], (Kind::Float, Device::Cpu)),
                    Tensor::randint(5, [6], (Kind::Int64, Device::Cpu)),
                )
            })
            .collect();
        let xs: Vec<Tensor> = data.iter().map(|(x, _)| x.shallow_clone()).collect();
        let logits = fused_net.forward_t(&crate::models::fused::fuse_inputs(&xs), true);
        let losses: Vec<Tensor> = data
            .iter()
            .enumerate()
            .map(|(g, (_, y))| (logits.select(1, g as i64) * 10.0).cross_entropy_for_logits(y))
            .collect();
        fused_opt.zero_grad();
        Tensor::stack(&losses, 0).sum(Kind::Float).backward();
        fused_opt.step(cfg.lr);
        for (g, ((_, net), opt)) in lone.iter().zip(&mut lone_opts).enumerate() {
            let (x, y) = &data[g];
            let loss = (net.forward_t(x, true) * 10.0).cross_entropy_for_logits(y);
            opt.zero_grad();
            loss.backward();
            opt.step(cfg.lr);
            let (a, f) = (loss.double_value(&[]), losses[g].double_value(&[]));
            assert!((a - f).abs() <= ONE_STEP * a.abs().max(1.0), "member {g}: loss {a} alone, {f} fused");
        }
        for (g, (vs, _)) in lone.iter().enumerate() {
            let named = vs.variables();
            for (name, value) in crate::models::fused::member_variables(&fused_vs, g as i64, vs) {
                let distance = relative_distance(&value, &named[&name]);
                assert!(distance <= ONE_STEP, "member {g}, {name}: {distance:e} from its lone twin's after one step");
            }
        }
    }

    #[test]
    fn tau_normalisation_divides_by_the_weight_norm() {
        let _guard = crate::torch_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let mut c = Classifier::new(&vs.root(), 2, 2, false);
        tch::no_grad(|| {
            c.weight.copy_(&Tensor::from_slice2(&[[3.0f32, 4.0], [0.0, 2.0]]));
            c.bias.as_mut().unwrap().copy_(&Tensor::from_slice(&[1.0f32, 1.0]));
        });
        let f = Tensor::from_slice2(&[[1.0f32, 1.0]]);
        let plain = Vec::<f32>::try_from(c.forward(&f, 0.0).view([-1])).unwrap();
        assert_eq!(plain, [8.0, 3.0]);
        // tau = 1: unit-norm rows [0.6, 0.8] and [0, 1], no bias.
        let normed = Vec::<f32>::try_from(c.forward(&f, 1.0).view([-1])).unwrap();
        assert!((normed[0] - 1.4).abs() < 1e-6 && (normed[1] - 1.0).abs() < 1e-6, "{normed:?}");
    }
}
