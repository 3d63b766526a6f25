//! What a study optimises and what it reports: the training loss of a batch, and the metrics of an
//! evaluation point. The loop owns everything else (order, steps, checkpoints, timing).

use super::eval::{evaluate, evaluate_members, member_cross_entropy, EvalOn, Evaluation};
use super::{fused_batches, TrainData};
use std::collections::BTreeMap;
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

pub trait Objective {
    /// The loss of one training batch; `epoch` counts from 0 (schedules such as deferred
    /// re-weighting switch on it).
    fn loss(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor;

    /// The metrics reported after an epoch, by name; the error says why a pass failed.
    fn evaluate(&self, net: &dyn ModuleT, data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String>;
}

/// What a fused group (`models::fused`) optimises and reports, member by member: the group's
/// counterpart of [`Objective`], whose member g must compute what the lone trial's would.
pub trait GroupObjective {
    /// Each member's mean training loss, [G], from logits [B, G, classes] and labels [B, G].
    fn member_losses(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor;

    /// Each member's metrics after an epoch, in member order; `members[g]` is member g's data.
    fn evaluate_members(
        &self,
        net: &dyn ModuleT,
        members: &[&dyn TrainData],
        on: EvalOn,
    ) -> Result<Vec<BTreeMap<String, f64>>, String>;
}

/// Cross-entropy, reported as loss and error on both splits: the double-descent metrics.
pub struct ErrorRates;

impl Objective for ErrorRates {
    fn loss(&self, logits: &Tensor, labels: &Tensor, _epoch: u32) -> Tensor {
        logits.cross_entropy_for_logits(labels)
    }

    fn evaluate(&self, net: &dyn ModuleT, data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        Ok(error_metrics(&evaluate(net, data.eval_train(), on)?, &evaluate(net, data.eval_test(), on)?))
    }
}

impl GroupObjective for ErrorRates {
    fn member_losses(&self, logits: &Tensor, labels: &Tensor, _epoch: u32) -> Tensor {
        member_cross_entropy(logits, labels).mean_dim(0, false, Kind::Float)
    }

    fn evaluate_members(
        &self,
        net: &dyn ModuleT,
        members: &[&dyn TrainData],
        on: EvalOn,
    ) -> Result<Vec<BTreeMap<String, f64>>, String> {
        let g = members.len() as i64;
        let pass = |test: bool| {
            let passes = members.iter().map(|m| if test { m.eval_test() } else { m.eval_train() }).collect();
            evaluate_members(net, fused_batches(passes), g, on)
        };
        let (train, test) = (pass(false)?, pass(true)?);
        Ok(train.iter().zip(&test).map(|(a, b)| error_metrics(a, b)).collect())
    }
}

/// The double-descent metrics of one evaluation point: loss and error on both splits, and whether
/// the training set is fitted.
pub fn error_metrics(train: &Evaluation, test: &Evaluation) -> BTreeMap<String, f64> {
    [
        ("train_loss", train.loss),
        ("train_error", train.error),
        ("test_loss", test.loss),
        ("test_error", test.error),
        ("interpolated", if train.error == 0.0 { 1.0 } else { 0.0 }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
