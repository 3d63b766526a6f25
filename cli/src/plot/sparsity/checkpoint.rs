//! Reads a trial's final model from its checkpoint, `<root>/<sweep>/<trial>/latest/model.safetensors`,
//! with the `safetensors` crate (the CLI may be built without libtorch). What it reads is bounded:
//! the file by [`MAX_FILE_BYTES`], each tensor by [`MAX_ELEMENTS`].

use anyhow::Context;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The model file of a checkpoint's `latest/` folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// Files larger than this are not read (a preact-ResNet-18 is about 45 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Tensors with more elements than this (64 M, 256 MB of f32) are not converted.
pub const MAX_ELEMENTS: usize = 64 << 20;
/// The prefix of a mask variable: `mask.layer0.weight` masks `layer0.weight`.
pub const MASK_PREFIX: &str = "mask.";

/// A tensor as f32 values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Tensor {
    /// Rows (the first dimension) and the size of each row (the product of the others).
    pub fn rows_cols(&self) -> (usize, usize) {
        let rows = self.shape.first().copied().unwrap_or(1);
        (rows, self.shape.iter().skip(1).product())
    }
}

/// A checkpoint read into memory, with the shape of each tensor it holds.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
    shapes: BTreeMap<String, Vec<usize>>,
}

/// Where the final model of trial `trial` of sweep `sweep` is under the checkpoint root `root`.
pub fn model_file(root: &Path, sweep: &str, trial: &str) -> PathBuf {
    root.join(sweep).join(trial).join("latest").join(MODEL_FILE)
}

impl Checkpoint {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let size =
            std::fs::metadata(path).with_context(|| format!("{}: cannot read the checkpoint", path.display()))?.len();
        if size > MAX_FILE_BYTES {
            anyhow::bail!(
                "{}: the checkpoint has {size} bytes, more than the {MAX_FILE_BYTES} `sweep plot` reads",
                path.display()
            );
        }
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the checkpoint", path.display()))?;
        let shapes = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e:?}", path.display()))?
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        Ok(Checkpoint { path: path.to_path_buf(), bytes, shapes })
    }

    /// Tensor `name` as f32 values; an error names the file and the tensor.
    pub fn tensor(&self, name: &str) -> anyhow::Result<Tensor> {
        self.tensor_within(name, MAX_ELEMENTS)
    }

    fn tensor_within(&self, name: &str, max_elements: usize) -> anyhow::Result<Tensor> {
        let file = self.path.display();
        let tensors = SafeTensors::deserialize(&self.bytes).map_err(|e| anyhow::anyhow!("{file}: {e:?}"))?;
        let view = tensors.tensor(name).map_err(|_| anyhow::anyhow!("{file}: no tensor `{name}`"))?;
        let shape = view.shape().to_vec();
        let elements: usize = shape.iter().product();
        if elements > max_elements {
            anyhow::bail!(
                "{file}: tensor `{name}` has {elements} elements, more than the {max_elements} `sweep plot` reads"
            );
        }
        if view.dtype() != Dtype::F32 {
            anyhow::bail!("{file}: tensor `{name}` is {:?}; expected F32", view.dtype());
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Tensor { shape, values })
    }

    /// Weight `name` as the network uses it: multiplied by its mask `mask.<name>` when the
    /// checkpoint holds one, so that every pruned weight is exactly zero.
    pub fn masked(&self, name: &str) -> anyhow::Result<Tensor> {
        let mut weight = self.tensor(name)?;
        let mask_name = format!("{MASK_PREFIX}{name}");
        if self.shapes.get(&mask_name) == Some(&weight.shape) {
            let mask = self.tensor(&mask_name)?;
            for (w, m) in weight.values.iter_mut().zip(&mask.values) {
                if *m == 0.0 {
                    *w = 0.0;
                }
            }
        }
        Ok(weight)
    }

    /// The masks of weight matrices and kernels (not biases): (layer name, mask name), where
    /// `mask.layer0.weight` is layer `layer0`.
    pub fn weight_masks(&self) -> Vec<(String, String)> {
        self.shapes
            .iter()
            .filter(|(_, shape)| shape.len() >= 2)
            .filter_map(|(name, _)| {
                let layer = name.strip_prefix(MASK_PREFIX)?.strip_suffix(".weight")?;
                Some((layer.to_string(), name.clone()))
            })
            .collect()
    }

    /// The first layer's weight: `layer0.weight` (the MLP), `conv0.weight` (cnn5), or else the
    /// convolution kernel with the fewest input channels, the one that sees the image.
    pub fn first_layer(&self) -> Option<String> {
        for known in ["layer0.weight", "conv0.weight"] {
            if self.shapes.contains_key(known) {
                return Some(known.to_string());
            }
        }
        self.shapes
            .iter()
            .filter(|(name, shape)| shape.len() == 4 && !name.starts_with(MASK_PREFIX))
            .min_by(|a, b| a.1[1].cmp(&b.1[1]).then_with(|| super::natural_cmp(a.0, b.0)))
            .map(|(name, _)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testdata::write_safetensors as write;

    #[test]
    fn masked_weights_are_zero_where_the_mask_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MODEL_FILE);
        let tensors = [
            ("layer0.weight", vec![2, 2], vec![1.0, -2.0, 3.0, 4.0]),
            ("mask.layer0.weight", vec![2, 2], vec![1.0, 0.0, 0.0, 1.0]),
            ("mask.layer0.bias", vec![2], vec![1.0, 1.0]),
            ("conv9.weight", vec![4, 3, 3, 3], vec![0.5; 108]),
        ];
        write(&path, &tensors.map(|(n, s, v)| (n.to_string(), s, v)));
        let ckpt = Checkpoint::read(&path).unwrap();
        assert_eq!(ckpt.masked("layer0.weight").unwrap().values, [1.0, 0.0, 0.0, 4.0]);
        assert_eq!(ckpt.weight_masks(), [("layer0".to_string(), "mask.layer0.weight".to_string())]);
        assert_eq!(ckpt.first_layer().as_deref(), Some("layer0.weight"));
        assert_eq!(ckpt.tensor("conv9.weight").unwrap().rows_cols(), (4, 27));
        let err = ckpt.tensor_within("conv9.weight", 100).unwrap_err().to_string();
        assert!(err.contains("has 108 elements, more than the 100"), "{err}");
        let err = ckpt.tensor("layer1.weight").unwrap_err().to_string();
        assert!(err.contains("no tensor `layer1.weight`"), "{err}");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(Checkpoint::read(&path).err().unwrap().to_string().contains("not a safetensors file"));
    }
}
