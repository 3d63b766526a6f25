//! A fully connected network of any depth: `sizes[0] -> sizes[1] -> ... -> sizes[last]`, with an
//! activation after every layer but the last; weights are [out, in]. The `mlp` workload trains it
//! with ReLU, `edge_of_stability` with tanh or ReLU (Cohen et al.'s fc-tanh). Initialisation draws
//! from the trial's seed, never libtorch's global generator, so a trial is reproducible.

use crate::rng::{Rng, Stream};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
}

impl Activation {
    pub const NAMES: [&'static str; 2] = ["relu", "tanh"];

    pub fn parse(name: &str) -> Option<Activation> {
        match name {
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
        }
    }
}

#[derive(Debug)]
pub struct Dense {
    layers: Vec<(Tensor, Tensor)>,
    activation: Activation,
}

impl Dense {
    /// PyTorch's default `nn.Linear` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
    /// and biases, drawn from `seed`. Variables are `layer<i>.weight` and `layer<i>.bias` under `root`.
    pub fn new(root: &nn::Path, sizes: &[usize], activation: Activation, seed: u64) -> Dense {
        let mut rng = Rng::new(seed, Stream::Init);
        let mut uniform = |count: usize, bound: f64| -> Vec<f32> {
            (0..count).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32).collect()
        };
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, io)| {
                let (fan_in, fan_out) = (io[0], io[1]);
                let bound = 1.0 / (fan_in as f64).sqrt();
                let w = Tensor::from_slice(&uniform(fan_out * fan_in, bound)).view([fan_out as i64, fan_in as i64]);
                let b = Tensor::from_slice(&uniform(fan_out, bound));
                let layer = root / format!("layer{i}");
                (layer.var_copy("weight", &w), layer.var_copy("bias", &b))
            })
            .collect();
        Dense { layers, activation }
    }
}

impl ModuleT for Dense {
    /// Inputs of any shape [B, ...] are flattened to [B, sizes[0]].
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x.flatten(1, -1), |h, (i, (w, b))| {
            let z = h.linear(w, Some(b));
            if i < last {
                self.activation.apply(&z)
            } else {
                z
            }
        })
    }
}
