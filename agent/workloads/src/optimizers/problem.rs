//! The problems the optimizers race on: their training data, network and loss.

use super::params::Problem;
use crate::error::TrialError;
use crate::image_data;
use crate::models::dense::{Activation, Dense};
use crate::models::{self, Arch, ModelSpec};
use crate::rng::{Rng, Stream};
use sweep_spec::TrialSpec;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// Points per forward pass when the whole training set is evaluated.
const EVAL_CHUNK: i64 = 2048;

/// Training points on the trial's device: inputs, and targets (least squares: [n, outputs] floats;
/// images: class labels).
pub struct Data {
    pub inputs: Tensor,
    pub targets: Tensor,
    /// Some(classes) for classification, whose records carry the accuracy.
    pub classes: Option<i64>,
}

impl Data {
    pub fn points(&self) -> i64 {
        self.inputs.size()[0]
    }
}

/// The data of `problem`: made from the seed for least squares, read through the image loaders
/// (cut to `n_train`, normalised per channel) otherwise.
pub fn data(problem: Problem, spec: &TrialSpec, n_train: usize, seed: u64, device: Device) -> Result<Data, TrialError> {
    if let Problem::LeastSquares { points, dim, outputs, condition_number } = problem {
        if spec.data.is_some() {
            return Err(TrialError::bad_config(
                "data: problem = \"least_squares\" makes its own data and takes no [data] section",
            ));
        }
        return Ok(least_squares(points, dim, outputs, condition_number, seed, device));
    }
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config(format!(
            "data: problem = \"{}\" of workload `optimizers` needs a [data] section with `format` and `path`",
            spec.params.get("problem").and_then(|p| p.as_str()).unwrap_or_default()
        ))
    })?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train, n_train);
    let inputs = image_data::normalised(&train.images, &splits.mean, &splits.std).to_kind(Kind::Float);
    Ok(Data { inputs: inputs.to_device(device), targets: train.labels.to_device(device), classes: Some(train.classes) })
}

/// n points x = z diag(s) Qᵀ with z standard normal, s_i² spread log-uniformly over
/// [1/condition_number, 1] and Q a random rotation (so no diagonal preconditioner can undo the
/// conditioning), and targets y = x W*ᵀ for a standard normal W* [outputs, dim], scaled so that
/// the mean of |y|² over points is 1: the loss starts at 1/2, its minimum is 0, and its Hessian
/// is the inputs' covariance (per output), top eigenvalue about 1.
fn least_squares(n: i64, dim: i64, outputs: i64, condition_number: f64, seed: u64, device: Device) -> Data {
    let mut rng = Rng::new(seed, Stream::Features);
    let mut normals = |shape: &[i64]| {
        let count: i64 = shape.iter().product();
        Tensor::from_slice(&rng.normals(count as usize)).to_kind(Kind::Double).view(shape)
    };
    let (q, _) = Tensor::linalg_qr(&normals(&[dim, dim]), "reduced");
    let spread = |i: i64| condition_number.powf(-(i as f64) / (2.0 * (dim - 1).max(1) as f64));
    let scales = Tensor::from_slice(&(0..dim).map(spread).collect::<Vec<f64>>());
    let inputs = (normals(&[n, dim]) * scales.unsqueeze(0)).matmul(&q.tr());
    let teacher = normals(&[outputs, dim]);
    let targets = inputs.matmul(&teacher.tr());
    let targets = &targets / targets.square().sum_dim_intlist(-1, false, Kind::Double).mean(Kind::Double).sqrt();
    let float = |t: Tensor| t.to_kind(Kind::Float).to_device(device);
    Data { inputs: float(inputs), targets: float(targets), classes: None }
}

/// The network of `problem` for inputs shaped like `data`'s. The convex problems start at zero
/// weights, as is usual for them; the networks from the seed.
pub fn network(problem: Problem, root: &nn::Path, data: &Data, seed: u64) -> Result<Box<dyn ModuleT>, TrialError> {
    let size = data.inputs.size();
    let features: i64 = size[1..].iter().product();
    let zero = nn::Init::Const(0.0);
    Ok(match problem {
        Problem::LeastSquares { outputs, .. } => {
            let config = nn::LinearConfig { ws_init: zero, bs_init: None, bias: false };
            Box::new(nn::linear(root / "linear", features, outputs, config))
        }
        Problem::Logistic => {
            let classes = data.classes.unwrap_or(1);
            let config = nn::LinearConfig { ws_init: zero, bs_init: Some(zero), bias: true };
            let linear = nn::linear(root / "linear", features, classes, config);
            Box::new(nn::func_t(move |x, _| x.flatten(1, -1).apply(&linear)))
        }
        Problem::Mlp { width, depth } => {
            let mut sizes = vec![features as usize];
            sizes.extend(std::iter::repeat_n(width, depth));
            sizes.push(data.classes.unwrap_or(1) as usize);
            Box::new(Dense::new(root, &sizes, Activation::Relu, seed))
        }
        Problem::Cnn5 { width } => {
            tch::manual_seed(seed as i64);
            let spec = ModelSpec {
                arch: Arch::Cnn5,
                width,
                in_channels: size[1],
                image_size: size[2],
                classes: data.classes.unwrap_or(1),
                dropout: 0.0,
            };
            models::build(root, &spec).map_err(|e| TrialError::bad_config(format!("params: {e}")))?
        }
    })
}

/// The mean loss of `outputs` against `targets` over the points: half the squared error (summed
/// over the outputs) for least squares, cross-entropy for classification.
pub fn loss(outputs: &Tensor, targets: &Tensor, classification: bool) -> Tensor {
    if classification {
        outputs.cross_entropy_for_logits(targets)
    } else {
        (outputs - targets).square().sum_dim_intlist(-1, false, Kind::Float).mean(Kind::Float) * 0.5
    }
}

/// The loss (and accuracy, for classification) over every training point, without gradients.
pub fn evaluate(net: &dyn ModuleT, data: &Data) -> (f64, Option<f64>) {
    tch::no_grad(|| {
        let (mut total, mut correct) = (0.0, 0.0);
        let n = data.points();
        for start in (0..n).step_by(EVAL_CHUNK as usize) {
            let len = EVAL_CHUNK.min(n - start);
            let (x, y) = (data.inputs.narrow(0, start, len), data.targets.narrow(0, start, len));
            let out = net.forward_t(&x, false);
            total += loss(&out, &y, data.classes.is_some()).double_value(&[]) * len as f64;
            if data.classes.is_some() {
                correct += out.argmax(-1, false).eq_tensor(&y).sum(Kind::Float).double_value(&[]);
            }
        }
        let n = n.max(1) as f64;
        (total / n, data.classes.map(|_| correct / n))
    })
}
