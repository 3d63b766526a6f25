//! What the long-tail study reports after each epoch: top-1 accuracy overall, on the many-shot
//! (more than 100 training images), medium-shot (20 to 100) and few-shot (fewer than 20) classes,
//! balanced accuracy, and every class's accuracy as `class_acc/<class>` next to its training size
//! `class_train_count/<class>`. Class sizes are those of the training split the trial used.
//! Post-hoc logit adjustment subtracts tau * log prior from the logits before the argmax.

use super::loss::Loss;
use crate::harness::{
    for_each_batch, fused_batches, member_cross_entropy, Batch, EvalOn, GroupObjective, Objective, TrainData,
};
use std::collections::BTreeMap;
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

/// Shot groups of Liu et al. 2019 (ImageNet-LT), by training images per class.
pub const MANY_ABOVE: usize = 100;
pub const FEW_BELOW: usize = 20;

/// The training objective and the evaluation of the long-tail study.
pub struct LongTail {
    pub loss: Loss,
    /// Training images per class.
    pub class_sizes: Vec<usize>,
    pub posthoc_tau: f64,
}

impl Objective for LongTail {
    fn loss(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor {
        self.loss.compute(logits, labels, epoch)
    }

    fn evaluate(&self, net: &dyn ModuleT, data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        let counts = self.count(net, data.eval_test(), None, on)?;
        Ok(counts[0].metrics(&self.class_sizes))
    }
}

/// A fused group of long-tail trials: the members share the data, so the class sizes, the loss's
/// priors and margins, and the post-hoc adjustment are the same for each.
impl GroupObjective for LongTail {
    fn member_losses(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor {
        self.loss.compute(logits, labels, epoch)
    }

    fn evaluate_members(
        &self,
        net: &dyn ModuleT,
        members: &[&dyn TrainData],
        on: EvalOn,
    ) -> Result<Vec<BTreeMap<String, f64>>, String> {
        let passes = fused_batches(members.iter().map(|m| m.eval_test()).collect());
        let counts = self.count(net, Box::new(passes), Some(members.len() as i64), on)?;
        Ok(counts.iter().map(|c| c.metrics(&self.class_sizes)).collect())
    }
}

impl LongTail {
    /// Correct predictions and examples per class, summed on the device and read once: of one
    /// network (`members` None: logits [B, classes]), or of each member of a fused group (logits
    /// [B, members, classes] against labels [B, members]).
    fn count(
        &self,
        net: &dyn ModuleT,
        batches: Box<dyn Iterator<Item = Batch> + '_>,
        members: Option<i64>,
        on: EvalOn,
    ) -> Result<Vec<ClassCounts>, String> {
        let (g, classes) = (members.unwrap_or(1), self.class_sizes.len() as i64);
        let mut correct = Tensor::zeros([g * classes], (Kind::Double, on.device));
        let mut total = Tensor::zeros([g * classes], (Kind::Double, on.device));
        let mut loss_sum = Tensor::zeros([g], (Kind::Double, on.device));
        let adjustment = &self.loss.log_prior * self.posthoc_tau;
        // Member g's class c is tallied at g * classes + c.
        let offsets = Tensor::arange(g, (Kind::Int64, on.device)) * classes;
        for_each_batch(net, batches, on, |logits, y| {
            let (logits, y) = match members {
                Some(_) => (logits.shallow_clone(), y.shallow_clone()),
                None => (logits.unsqueeze(1), y.unsqueeze(1)),
            };
            let _ = loss_sum
                .f_add_(&member_cross_entropy(&logits, &y).to_kind(Kind::Double).sum_dim_intlist(0, false, None));
            // index_add_ rather than bincount, whose output size is read back to the host.
            let hit = (&logits - &adjustment).argmax(-1, false).eq_tensor(&y).to_kind(Kind::Double).flatten(0, -1);
            let slot = (&y + &offsets).flatten(0, -1);
            let _ = correct.f_index_add_(0, &slot, &hit);
            let _ = total.f_index_add_(0, &slot, &hit.ones_like());
        })?;
        let read = |t: Tensor| Vec::<f64>::try_from(t.to_device(Device::Cpu)).expect("f64 counts");
        let (correct, total, loss_sum) = (read(correct), read(total), read(loss_sum));
        Ok((0..g as usize)
            .map(|m| {
                let k = classes as usize;
                let total = total[m * k..(m + 1) * k].to_vec();
                let examples: f64 = total.iter().sum();
                ClassCounts {
                    correct: correct[m * k..(m + 1) * k].to_vec(),
                    total,
                    mean_loss: loss_sum[m] / examples.max(1.0),
                }
            })
            .collect())
    }
}

/// Per-class tallies of one evaluation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCounts {
    pub correct: Vec<f64>,
    pub total: Vec<f64>,
    /// Mean cross-entropy of the unadjusted logits.
    pub mean_loss: f64,
}

impl ClassCounts {
    /// The reported metrics. A shot group with no test examples is left out rather than reported
    /// as a made-up number (CIFAR-10-LT at rho = 10 has no few-shot class).
    pub fn metrics(&self, class_sizes: &[usize]) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let accuracy = |filter: &dyn Fn(usize) -> bool| -> Option<f64> {
            let (c, t) = (0..class_sizes.len())
                .filter(|&k| filter(class_sizes[k]))
                .fold((0.0, 0.0), |(c, t), k| (c + self.correct[k], t + self.total[k]));
            (t > 0.0).then(|| c / t)
        };
        let groups: [(&str, &dyn Fn(usize) -> bool); 4] = [
            ("test_acc", &|_| true),
            ("test_acc_many", &|n| n > MANY_ABOVE),
            ("test_acc_medium", &|n| (FEW_BELOW..=MANY_ABOVE).contains(&n)),
            ("test_acc_few", &|n| n < FEW_BELOW),
        ];
        for (name, filter) in groups {
            if let Some(acc) = accuracy(filter) {
                m.insert(name.to_string(), acc);
            }
        }
        let per_class: Vec<f64> =
            (0..class_sizes.len()).filter(|&k| self.total[k] > 0.0).map(|k| self.correct[k] / self.total[k]).collect();
        if !per_class.is_empty() {
            m.insert("test_acc_balanced".into(), per_class.iter().sum::<f64>() / per_class.len() as f64);
        }
        m.insert("test_loss".into(), self.mean_loss);
        for (k, &n) in class_sizes.iter().enumerate() {
            if self.total[k] > 0.0 {
                m.insert(format!("class_acc/{k}"), self.correct[k] / self.total[k]);
            }
            m.insert(format!("class_train_count/{k}"), n as f64);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_training_class_sizes() {
        // Sizes: many (500, 101), medium (100, 20), few (19, 1).
        let sizes = [500, 101, 100, 20, 19, 1];
        let counts = ClassCounts {
            correct: vec![9.0, 8.0, 6.0, 4.0, 1.0, 0.0],
            total: vec![10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
            mean_loss: 1.5,
        };
        let m = counts.metrics(&sizes);
        let close = |k: &str, v: f64| assert!((m[k] - v).abs() < 1e-12, "{k} = {}, want {v}", m[k]);
        close("test_acc", 28.0 / 60.0);
        close("test_acc_many", 17.0 / 20.0);
        close("test_acc_medium", 10.0 / 20.0);
        close("test_acc_few", 1.0 / 20.0);
        close("test_acc_balanced", (0.9 + 0.8 + 0.6 + 0.4 + 0.1) / 6.0);
        close("class_acc/2", 0.6);
        close("class_train_count/5", 1.0);
        close("test_loss", 1.5);
    }

    #[test]
    fn an_empty_group_is_left_out() {
        let counts = ClassCounts { correct: vec![5.0, 3.0], total: vec![10.0, 10.0], mean_loss: 0.0 };
        let m = counts.metrics(&[5000, 500]);
        assert!(m.contains_key("test_acc_many"));
        assert!(!m.contains_key("test_acc_medium") && !m.contains_key("test_acc_few"));
    }
}

#[cfg(test)]
mod posthoc_tests {
    use super::*;
    use crate::long_tail::loss::LossSettings;
    use tch::nn;

    /// Logits that favour the head class by a margin smaller than the log-prior gap: plain argmax
    /// picks the head, post-hoc adjustment with tau = 1 picks the tail.
    #[test]
    fn posthoc_adjustment_moves_predictions_towards_the_tail() {
        let sizes = vec![90, 10];
        let logits = || Tensor::from_slice2(&[[1.0f32, 0.0], [1.0, 0.0]]);
        let net = nn::func_t(move |_, _| logits());
        // Three batches of one shape: under rehearsed graphs the second and third replay the first.
        let batches = || -> Box<dyn Iterator<Item = Batch>> {
            Box::new((0..3).map(|_| Batch {
                inputs: Tensor::zeros([2, 1], (Kind::Float, Device::Cpu)),
                labels: Tensor::from_slice(&[0i64, 1]),
            }))
        };
        let objective = |tau| LongTail {
            loss: Loss::new(LossSettings::cross_entropy(), &sizes, Device::Cpu),
            class_sizes: sizes.clone(),
            posthoc_tau: tau,
        };
        for on in [EvalOn::cpu(), EvalOn { graphs: crate::harness::GraphMode::Rehearse, ..EvalOn::cpu() }] {
            let count = |tau| objective(tau).count(&net, batches(), None, on).unwrap().remove(0);
            // ln(90/100) - ln(10/100) = 2.2 > 1: with tau = 1 the adjusted logits are [1 - (-0.105), 0 - (-2.303)].
            let plain = count(0.0);
            assert_eq!(
                (plain.correct.as_slice(), plain.total.as_slice()),
                ([3.0, 0.0].as_slice(), [3.0, 3.0].as_slice())
            );
            let adjusted = count(1.0);
            assert_eq!(adjusted.correct, [0.0, 3.0]);
            // A small tau keeps the head's prediction: 1 > 0.4 * 2.2 = 0.88.
            assert_eq!(count(0.4).correct, [3.0, 0.0]);
            // The loss reported is that of the unadjusted logits either way.
            assert_eq!(plain.mean_loss, adjusted.mean_loss);
        }
    }

    /// A fused group's pass tallies each member on its own: member 0 predicts the head class,
    /// member 1 the tail, and member 1's labels are all the tail; each gets its own counts and
    /// loss, which are those of the member's logits alone.
    #[test]
    fn each_member_of_a_group_is_counted_on_its_own() {
        let sizes = vec![90, 10];
        let net = nn::func_t(|_, _| Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0, 1.0, 0.0, 0.0, 2.0]).view([2, 2, 2]));
        let batches = || -> Box<dyn Iterator<Item = Batch>> {
            Box::new((0..3).map(|_| Batch {
                inputs: Tensor::zeros([2, 1], (Kind::Float, Device::Cpu)),
                labels: Tensor::from_slice(&[0i64, 1, 1, 1]).view([2, 2]),
            }))
        };
        let objective = LongTail {
            loss: Loss::new(LossSettings::cross_entropy(), &sizes, Device::Cpu),
            class_sizes: sizes.clone(),
            posthoc_tau: 0.0,
        };
        for on in [EvalOn::cpu(), EvalOn { graphs: crate::harness::GraphMode::Rehearse, ..EvalOn::cpu() }] {
            let counts = objective.count(&net, batches(), Some(2), on).unwrap();
            assert_eq!(
                (counts[0].correct.as_slice(), counts[0].total.as_slice()),
                ([3.0, 0.0].as_slice(), [3.0, 3.0].as_slice())
            );
            assert_eq!(
                (counts[1].correct.as_slice(), counts[1].total.as_slice()),
                ([0.0, 6.0].as_slice(), [0.0, 6.0].as_slice())
            );
            // Member 1: logits [0, 2] against class 1 throughout.
            let expected = (1.0f64 + (-2.0f64).exp()).ln();
            assert!((counts[1].mean_loss - expected).abs() < 1e-6, "{}", counts[1].mean_loss);
        }
    }
}
