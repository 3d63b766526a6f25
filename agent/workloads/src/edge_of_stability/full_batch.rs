//! The full-batch objective of gradient descent: the training loss over every training point,
//! computed chunk by chunk so that it fits in memory, with its gradient and its exact
//! Hessian-vector products (double backward). Parameters are handled as one flat vector in the
//! order of [`Params::named`], which is also the optimizer's order.

use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Reduction, Tensor};

/// The training loss of `edge_of_stability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Half the squared distance to the one-hot target, summed over classes, averaged over points
    /// (Cohen et al.'s "MSE").
    Mse,
    CrossEntropy,
}

/// The network's trainable variables in name order, with their names.
pub struct Params {
    pub named: Vec<(String, Tensor)>,
}

impl Params {
    pub fn of(vars: &VarStore) -> Params {
        let mut named: Vec<(String, Tensor)> =
            vars.variables().into_iter().filter(|(_, t)| t.requires_grad() && t.numel() > 0).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Params { named }
    }

    pub fn count(&self) -> i64 {
        self.named.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    pub fn tensors(&self) -> Vec<Tensor> {
        self.named.iter().map(|(_, t)| t.shallow_clone()).collect()
    }

    /// Per-variable tensors (gradients, products) as one flat vector.
    pub fn flatten(parts: &[Tensor]) -> Tensor {
        Tensor::cat(&parts.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0)
    }

    /// A flat vector cut back into tensors shaped like the variables.
    pub fn split(&self, flat: &Tensor) -> Vec<Tensor> {
        let mut offset = 0;
        self.named
            .iter()
            .map(|(_, t)| {
                let n = t.numel() as i64;
                let part = flat.narrow(0, offset, n).view(t.size().as_slice());
                offset += n;
                part
            })
            .collect()
    }
}

/// The training set on the device, in chunks: inputs, labels and (for MSE) one-hot targets.
pub struct FullBatch {
    inputs: Tensor,
    labels: Tensor,
    targets: Tensor,
    loss: Loss,
    chunk: i64,
}

/// The full-batch loss and accuracy at the current parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub loss: f64,
    pub accuracy: f64,
}

impl FullBatch {
    /// `inputs` [N, ...] and `labels` [N] in 0..classes, already on the training device.
    pub fn new(inputs: Tensor, labels: Tensor, classes: i64, loss: Loss, chunk: i64) -> FullBatch {
        let targets = labels.one_hot(classes).to_kind(inputs.kind());
        FullBatch { inputs, labels, targets, loss, chunk: chunk.max(1) }
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// (start, size) of every chunk.
    fn chunks(&self) -> impl Iterator<Item = (i64, i64)> {
        let (n, chunk) = (self.len(), self.chunk);
        (0..n).step_by(chunk as usize).map(move |s| (s, chunk.min(n - s)))
    }

    /// Chunk (start, size)'s share of the full loss (its summed loss over N), and its correct count.
    fn share(&self, net: &dyn ModuleT, (start, size): (i64, i64)) -> (Tensor, Tensor) {
        let out = net.forward_t(&self.inputs.narrow(0, start, size), true);
        let labels = self.labels.narrow(0, start, size);
        let summed = match self.loss {
            Loss::Mse => (&out - self.targets.narrow(0, start, size)).square().sum(out.kind()) * 0.5,
            Loss::CrossEntropy => out.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Sum, -100, 0.0),
        };
        let correct = out.argmax(1, false).eq_tensor(&labels).sum(Kind::Float);
        (summed / self.len() as f64, correct)
    }

    /// The loss and accuracy, with the loss's gradient accumulated into the variables' `grad`
    /// (zero them first).
    pub fn gradient(&self, net: &dyn ModuleT) -> Fit {
        let (mut loss, mut correct) = (0.0, 0.0);
        for chunk in self.chunks() {
            let (share, right) = self.share(net, chunk);
            share.backward();
            loss += share.double_value(&[]);
            correct += right.double_value(&[]);
        }
        Fit { loss, accuracy: correct / self.len() as f64 }
    }

    /// H v, the Hessian of the full loss at the current parameters times the flat vector `v`:
    /// per chunk, the gradient with its graph kept, its dot product with v, and that product's
    /// gradient. The variables' `grad` is not touched.
    pub fn hvp(&self, net: &dyn ModuleT, params: &Params, v: &Tensor) -> Tensor {
        hvp(&params.tensors(), &params.split(v), self.chunks(), &mut |chunk| self.share(net, chunk).0)
    }
}

/// H v of a loss that is the sum of `share(c)` over `chunks`, with respect to `vars`, where `v` is
/// given per variable. Returns the flat product.
pub fn hvp<C>(
    vars: &[Tensor],
    v: &[Tensor],
    chunks: impl Iterator<Item = C>,
    share: &mut dyn FnMut(C) -> Tensor,
) -> Tensor {
    let mut total: Option<Tensor> = None;
    for chunk in chunks {
        let loss = share(chunk);
        let grads = Tensor::run_backward(&[&loss], vars, true, true);
        let dot = grads.iter().zip(v).map(|(g, v)| (g * v).sum(g.kind())).fold(None::<Tensor>, |acc, d| {
            Some(match acc {
                Some(a) => a + d,
                None => d,
            })
        });
        let Some(dot) = dot else { break };
        let product = Params::flatten(&Tensor::run_backward(&[&dot], vars, false, false));
        total = Some(match total {
            Some(t) => t + product,
            None => product,
        });
    }
    total.unwrap_or_else(|| Params::flatten(v).zeros_like())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge_of_stability::lanczos::{top_eigenpairs, Settings};
    use crate::models::dense::{Activation, Dense};
    use crate::rng::{Rng, Stream};
    use tch::Device;

    fn normals(n: usize, seed: u64) -> Tensor {
        Tensor::from_slice(&Rng::new(seed, Stream::Lanczos).normals(n)).to_kind(Kind::Double)
    }

    /// On f(w) = 1/2 w^T A w + b^T w, cut into two chunks (A = A1 + A2), the products summed over
    /// the chunks are A v, and Lanczos on them finds A's largest eigenvalues to 1e-4.
    #[test]
    fn lanczos_on_exact_products_finds_a_quadratics_top_eigenvalues() {
        let spectrum: Vec<f64> = [40.0, 25.0, 24.5, 10.0].into_iter().chain((0..60).map(|i| i as f64 / 10.0)).collect();
        let a = crate::edge_of_stability::lanczos::with_spectrum(&spectrum, 11);
        let half = &a * 0.5;
        let w = normals(64, 12).set_requires_grad(true);
        let b = normals(64, 13);
        let vars = [w.shallow_clone()];
        let share = |_: usize| 0.5 * w.dot(&half.mv(&w)) + 0.5 * b.dot(&w);
        let mut product = |v: &Tensor| hvp(&vars, &[v.shallow_clone()], 0..2, &mut |c| share(c));
        let v = normals(64, 14);
        assert!(product(&v).allclose(&a.mv(&v), 1e-10, 1e-10, false));
        let mut rng = Rng::new(15, Stream::Lanczos);
        let found =
            top_eigenpairs(&mut product, &normals(64, 16), Settings { k: 3, max_iters: 64, tol: 1e-8 }, &mut || {
                Tensor::from_slice(&rng.normals(64)).to_kind(Kind::Double)
            });
        for (got, want) in found.values.iter().zip([40.0, 25.0, 24.5]) {
            assert!((got - want).abs() < 1e-4, "{:?}", found.values);
        }
    }

    /// The exact product on a small tanh network agrees with central finite differences of the
    /// gradient, (g(w + e v) - g(w - e v)) / 2e, in f64, for both losses and in chunks.
    #[test]
    fn products_agree_with_finite_differences_of_the_gradient() {
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            let mut vs = VarStore::new(Device::Cpu);
            let net = Dense::new(&vs.root(), &[5, 7, 6, 3], Activation::Tanh, 3);
            vs.double();
            let params = Params::of(&vs);
            let labels = Tensor::from_slice(&(0..20).map(|i| i % 3).collect::<Vec<i64>>());
            let data = FullBatch::new(normals(100, 4).view([20, 5]), labels, 3, loss, 7);
            let v = normals(params.count() as usize, 5);
            let exact = data.hvp(&net, &params, &v);
            let gradient_at = |shift: f64| {
                tch::no_grad(|| {
                    for (var, dv) in params.tensors().iter().zip(params.split(&v)) {
                        let _ = var.shallow_clone().g_add_(&(dv * shift));
                    }
                });
                for var in params.tensors() {
                    var.shallow_clone().zero_grad();
                }
                data.gradient(&net);
                let g = Params::flatten(&params.tensors().iter().map(|t| t.grad().copy()).collect::<Vec<_>>());
                tch::no_grad(|| {
                    for (var, dv) in params.tensors().iter().zip(params.split(&v)) {
                        let _ = var.shallow_clone().g_sub_(&(dv * shift));
                    }
                });
                g
            };
            let e = 1e-5;
            let numeric = (gradient_at(e) - gradient_at(-e)) / (2.0 * e);
            let error = (&exact - &numeric).norm().double_value(&[]) / exact.norm().double_value(&[]);
            assert!(error < 1e-6, "{loss:?}: relative error {error}");
        }
    }
}
