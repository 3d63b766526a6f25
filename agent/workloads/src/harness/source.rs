//! What the loop trains on: any data set that can hand out seeded training batches and ordered
//! evaluation batches. Image sets and the synthetic vector sets both implement it.

use tch::Tensor;

/// Inputs and integer class labels, on the CPU; the loop moves them to the device.
pub struct Batch {
    pub inputs: Tensor,
    pub labels: Tensor,
}

pub trait TrainData {
    /// The batches of `epoch` from batch `start` on, in an order and with augmentation fixed by
    /// the data's seed and `epoch`: starting at `start` yields what a full pass yields from there.
    fn train_batches(&self, epoch: u64, start: u64) -> Box<dyn Iterator<Item = Batch> + '_>;
    fn batches_per_epoch(&self) -> u64;
    /// The training set (with its noisy labels) in order, without augmentation.
    fn eval_train(&self) -> Box<dyn Iterator<Item = Batch> + '_>;
    fn eval_test(&self) -> Box<dyn Iterator<Item = Batch> + '_>;
}
