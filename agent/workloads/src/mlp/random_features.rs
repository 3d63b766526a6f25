//! Random-features mode of `mlp` (`hidden_trainable = false`): the closed-form fit of
//! [`crate::random_features`] on the workload's synthetic data.

use super::data::Dataset;
use super::MlpParams;
use crate::error::TrialError;
use crate::random_features::{self, Fit, Problem};
use crate::Sink;
use tch::Device;

/// Fits and reports one record: epoch 1, step 1.
pub fn fit(p: &MlpParams, data: &Dataset, device: Device, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    fit_features(p, data, device).report(p.data.n, sink)
}

pub fn fit_features(p: &MlpParams, data: &Dataset, device: Device) -> Fit {
    let t = data.to_tensors(Device::Cpu);
    let problem = Problem {
        train_x: &t.train_x,
        train_y: &t.train_y,
        test_x: &t.test_x,
        test_y: &t.test_y,
        classes: data.classes as i64,
    };
    random_features::fit(&problem, p.width, p.weight_decay, p.seed, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::data::DataParams;
    use crate::optim::OptimizerConfig;

    fn params(width: usize, weight_decay: f64, seed: u64) -> MlpParams {
        MlpParams {
            width,
            depth: 1,
            hidden_trainable: false,
            data: DataParams { n: 160, n_test: 1000, dim: 10, classes: 4, label_noise: 0.15 },
            epochs: 1,
            batch_size: 1,
            optimizer: OptimizerConfig::from_params(
                &serde_json::json!({"name": "adam", "lr": 1e-3}).as_object().unwrap().clone(),
                weight_decay,
            )
            .unwrap(),
            weight_decay,
            seed,
        }
    }

    fn mean_test_error(width: usize, weight_decay: f64) -> f64 {
        let seeds = [0, 1, 2];
        seeds
            .iter()
            .map(|&seed| {
                let p = params(width, weight_decay, seed);
                fit_features(&p, &Dataset::generate(&p.data, seed), Device::Cpu).test_error
            })
            .sum::<f64>()
            / seeds.len() as f64
    }

    #[test]
    fn test_error_peaks_at_the_interpolation_threshold() {
        let n = 160;
        let (narrow, at_n, wide) = (mean_test_error(n / 8, 0.0), mean_test_error(n, 0.0), mean_test_error(8 * n, 0.0));
        eprintln!("test error: width n/8 {narrow:.3}, n {at_n:.3}, 8n {wide:.3}");
        assert!(at_n > narrow && at_n > wide, "no peak: n/8 {narrow:.3}, n {at_n:.3}, 8n {wide:.3}");
    }

    #[test]
    fn ridge_lowers_the_peak() {
        let n = 160;
        let (pinv, ridge) = (mean_test_error(n, 0.0), mean_test_error(n, 1.0));
        eprintln!("test error at width n: min-norm {pinv:.3}, ridge {ridge:.3}");
        assert!(ridge < pinv, "ridge {ridge:.3} did not lower the peak {pinv:.3}");
    }

    #[test]
    fn wide_min_norm_fit_interpolates_the_noisy_labels() {
        let p = params(640, 0.0, 0);
        let f = fit_features(&p, &Dataset::generate(&p.data, 0), Device::Cpu);
        assert_eq!(f.train_error, 0.0);
        assert!(f.train_loss < 1e-12, "train mse {}", f.train_loss);
    }

    #[test]
    fn same_seed_same_metrics() {
        let p = params(100, 0.0, 4);
        let a = fit_features(&p, &Dataset::generate(&p.data, 4), Device::Cpu);
        let b = fit_features(&p, &Dataset::generate(&p.data, 4), Device::Cpu);
        assert_eq!(
            (a.train_loss, a.train_error, a.test_loss, a.test_error),
            (b.train_loss, b.train_error, b.test_loss, b.test_error)
        );
    }
}
