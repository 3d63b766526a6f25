//! What `multimodal` optimises and reports: cross-entropy on the class; after each evaluated epoch
//! the loss and accuracy on the training sample and the test split, every class's test accuracy
//! (`class_acc/<class>`), and the test accuracy with each modality removed from every example
//! (`test_acc/no_image`, `test_acc/no_text`): how much the prediction leans on each.

use super::batches::{Modality, MultimodalData};
use crate::harness::{for_each_batch, summed_cross_entropy, Batch, EvalOn, Objective, TrainData};
use std::collections::BTreeMap;
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

pub struct Report<'a> {
    pub data: &'a MultimodalData,
    pub classes: i64,
    pub parameters: i64,
}

/// Summed loss, right answers per class and examples per class of one pass.
struct Tally {
    loss: f64,
    right: Vec<f64>,
    total: Vec<f64>,
}

impl Tally {
    fn accuracy(&self) -> f64 {
        self.right.iter().sum::<f64>() / self.total.iter().sum::<f64>().max(1.0)
    }

    fn loss(&self) -> f64 {
        self.loss / self.total.iter().sum::<f64>().max(1.0)
    }
}

impl Report<'_> {
    fn tally(
        &self,
        net: &dyn ModuleT,
        batches: Box<dyn Iterator<Item = Batch> + '_>,
        on: EvalOn,
    ) -> Result<Tally, String> {
        let (c, device) = (self.classes, on.device);
        let mut loss = Tensor::zeros([], (Kind::Double, device));
        let mut right = Tensor::zeros([c], (Kind::Double, device));
        let mut total = Tensor::zeros([c], (Kind::Double, device));
        for_each_batch(net, batches, on, |logits, labels| {
            let _ = loss.f_add_(&summed_cross_entropy(logits, labels));
            let hit = logits.argmax(-1, false).eq_tensor(labels).to_kind(Kind::Double);
            let _ = right.f_index_add_(0, labels, &hit);
            let _ = total.f_index_add_(0, labels, &hit.ones_like());
        })?;
        let read = |t: &Tensor| Vec::<f64>::try_from(t).map_err(|e| e.to_string());
        Ok(Tally { loss: loss.double_value(&[]), right: read(&right)?, total: read(&total)? })
    }
}

impl Objective for Report<'_> {
    fn loss(&self, logits: &Tensor, labels: &Tensor, _epoch: u32) -> Tensor {
        logits.cross_entropy_for_logits(labels)
    }

    fn evaluate(&self, net: &dyn ModuleT, _data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        let d = self.data;
        let train = self.tally(net, d.train_sample(), on)?;
        let test = self.tally(net, d.in_order(&d.test, None), on)?;
        let no_image = self.tally(net, d.in_order(&d.test, Some(Modality::Image)), on)?;
        let no_text = self.tally(net, d.in_order(&d.test, Some(Modality::Text)), on)?;
        let mut m = BTreeMap::new();
        m.insert("train_loss".to_string(), train.loss());
        m.insert("train_acc".into(), train.accuracy());
        m.insert("test_loss".into(), test.loss());
        m.insert("test_acc".into(), test.accuracy());
        m.insert("test_acc/no_image".into(), no_image.accuracy());
        m.insert("test_acc/no_text".into(), no_text.accuracy());
        for (k, (right, total)) in test.right.iter().zip(&test.total).enumerate() {
            if *total > 0.0 {
                m.insert(format!("class_acc/{k}"), right / total);
            }
        }
        m.insert("parameters".into(), self.parameters as f64);
        Ok(m)
    }
}
