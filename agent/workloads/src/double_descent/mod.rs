//! Workload `double_descent` (Nakkiran et al. 2019, "Deep Double Descent"): an image classifier of
//! width k trained on data with a fixed fraction of noisy labels. Swept over k, test error rises
//! to a peak where the model first fits the training set, then falls again.

mod image_data;
mod params;

use crate::data;
use crate::error::TrialError;
use crate::harness::{self, Outcome, Plan, StopFlag};
use crate::models::{self, ModelSpec};
use crate::optim::Optimizer;
use crate::random_features::{self, Problem};
use crate::Sink;
use image_data::ImageData;
use params::{Model, Params};
use sweep_spec::TrialSpec;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};


pub fn run(spec: &TrialSpec, device: Device, sink: &mut Sink<'_>, stop: &StopFlag) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data_ref = spec
        .data
        .as_ref()
        .ok_or_else(|| TrialError::bad_config("data: workload `double_descent` needs a [data] section with `format` and `path`"))?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train, p.n_train);
    let classes = train.classes;
    let noisy = data::with_label_noise(&train.labels, classes, p.label_noise, p.seed);
    let train = data::ImageSet { images: train.images, labels: noisy, classes };
    let (c, h) = (train.images.size()[1], train.images.size()[2]);
    eprintln!("{} training images ({} noisy labels), {} test images, {c}x{h}x{h}, {classes} classes", train.len(), (p.label_noise * train.len() as f64).round(), splits.test.len());

    match p.model {
        Model::RandomFeatures => {
            let flat = |set: &data::ImageSet| normalised(&set.images, &splits.mean, &splits.std).flatten(1, -1);
            let (train_x, test_x) = (flat(&train), flat(&splits.test));
            let problem = Problem { train_x: &train_x, train_y: &train.labels, test_x: &test_x, test_y: &splits.test.labels, classes };
            random_features::fit(&problem, p.width as usize, p.weight_decay, p.seed, device).report(train.len(), sink)
        }
        Model::Net(arch) => {
            tch::manual_seed(p.seed as i64);
            let mut vs = VarStore::new(device);
            let net = models::build(&vs.root(), &ModelSpec { arch, width: p.width, in_channels: c, image_size: h, classes, dropout: p.dropout })
                .map_err(|e| TrialError::bad_config(format!("params: {e}")))?;
            eprintln!("{arch} width {}: {} parameters", p.width, models::parameter_count(&vs));
            let mut optimizer = Optimizer::new(p.optimizer.clone(), &vs);
            let data = ImageData {
                train,
                test: splits.test,
                mean: splits.mean,
                std: splits.std,
                batch_size: p.batch_size,
                seed: p.seed,
                augment: p.augment,
                pin: device.is_cuda(),
            };
            let plan = Plan {
                workload: spec.workload.clone(),
                epochs: p.epochs,
                seed: p.seed,
                base_lr: p.optimizer.lr,
                eval_every: p.eval_every,
                checkpoint_dir: crate::checkpoint_dir(),
                checkpoint_every: spec.checkpoint_every_epochs,
            };
            match harness::train(net.as_ref(), &mut vs, &mut optimizer, &p.schedule, &data, &plan, device, stop, sink)? {
                Outcome::Finished => Ok(()),
                Outcome::Stopped { .. } => Err(TrialError::Interrupted),
            }
        }
    }
}

/// u8 [N, C, H, W] images as f64 in [0, 1], normalised per channel.
fn normalised(images: &Tensor, mean: &[f64], std: &[f64]) -> Tensor {
    let c = mean.len() as i64;
    let mean = Tensor::from_slice(mean).view([1, c, 1, 1]);
    let std = Tensor::from_slice(std).view([1, c, 1, 1]);
    (images.to_kind(Kind::Double) / 255.0 - mean) / std
}
