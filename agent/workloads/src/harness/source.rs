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

/// Batch i of every member's pass, as one fused batch: inputs side by side on the channel axis
/// ([`crate::models::fused::fuse_inputs`]) and labels [B, members]. Ends with the shortest pass;
/// the members of a group share sizes, so their passes have the same length.
pub fn fused_batches<'a>(mut passes: Vec<Box<dyn Iterator<Item = Batch> + 'a>>) -> impl Iterator<Item = Batch> + 'a {
    std::iter::from_fn(move || {
        let batches: Vec<Batch> = passes.iter_mut().map(|p| p.next()).collect::<Option<_>>()?;
        let inputs: Vec<Tensor> = batches.iter().map(|b| b.inputs.shallow_clone()).collect();
        let labels: Vec<Tensor> = batches.iter().map(|b| b.labels.shallow_clone()).collect();
        Some(Batch { inputs: crate::models::fused::fuse_inputs(&inputs), labels: Tensor::stack(&labels, 1) })
    })
}
