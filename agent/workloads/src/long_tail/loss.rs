//! The losses of the long-tail study, each a function of the logits, the labels, the training
//! class sizes and (for deferred re-weighting) the epoch:
//! - `ce`: cross-entropy;
//! - `focal`: -(1 - p_y)^gamma log p_y (Lin et al. 2017);
//! - `cb_ce`, `cb_focal`: the same, weighted per class by (1 - beta) / (1 - beta^n_c), normalised to
//!   sum to the number of classes (Cui et al. 2019);
//! - `ldam_drw`: cross-entropy of s * (z - m_y e_y) with margins m_c proportional to n_c^(-1/4), the
//!   largest `ldam_max_margin`, on a cosine classifier; class-balanced weights from `drw_epoch` on
//!   (Cao et al. 2019);
//! - `balanced_softmax`: cross-entropy of z + log pi (Ren et al. 2020);
//! - `logit_adjust`: cross-entropy of z + tau log pi (Menon et al. 2021).
//!
//! pi is the training class prior n_c / N. Weighted losses average w_y * loss over the batch.

use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    Ce,
    Focal,
    CbCe,
    CbFocal,
    LdamDrw,
    BalancedSoftmax,
    LogitAdjust,
}

impl LossKind {
    pub const ALL: [LossKind; 7] = [
        LossKind::Ce,
        LossKind::Focal,
        LossKind::CbCe,
        LossKind::CbFocal,
        LossKind::LdamDrw,
        LossKind::BalancedSoftmax,
        LossKind::LogitAdjust,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LossKind::Ce => "ce",
            LossKind::Focal => "focal",
            LossKind::CbCe => "cb_ce",
            LossKind::CbFocal => "cb_focal",
            LossKind::LdamDrw => "ldam_drw",
            LossKind::BalancedSoftmax => "balanced_softmax",
            LossKind::LogitAdjust => "logit_adjust",
        }
    }

    pub fn parse(s: &str) -> Result<LossKind, String> {
        LossKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<String> = LossKind::ALL.iter().map(|k| format!("\"{}\"", k.name())).collect();
            format!("expected one of {}, got \"{s}\"", names.join(", "))
        })
    }

    /// LDAM's margins are in cosine units: it trains a cosine classifier.
    pub fn wants_cosine_classifier(self) -> bool {
        self == LossKind::LdamDrw
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossSettings {
    pub kind: LossKind,
    pub focal_gamma: f64,
    pub cb_beta: f64,
    pub ldam_max_margin: f64,
    pub ldam_scale: f64,
    pub drw_epoch: u32,
    pub logit_adjust_tau: f64,
}

impl LossSettings {
    /// Plain cross-entropy (the cRT stage's loss).
    pub fn cross_entropy() -> LossSettings {
        LossSettings {
            kind: LossKind::Ce,
            focal_gamma: 0.0,
            cb_beta: 0.0,
            ldam_max_margin: 0.0,
            ldam_scale: 1.0,
            drw_epoch: 0,
            logit_adjust_tau: 0.0,
        }
    }
}

/// A loss bound to the class sizes of the training split, with its per-class tensors on the device.
#[derive(Debug)]
pub struct Loss {
    settings: LossSettings,
    /// log(n_c / N), an empty class counted as one image so the log stays finite. f32 [C].
    pub log_prior: Tensor,
    /// Class-balanced weights, summing to C. f32 [C].
    class_weights: Tensor,
    /// LDAM margins. f32 [C].
    margins: Tensor,
}

impl Loss {
    pub fn new(settings: LossSettings, class_sizes: &[usize], device: Device) -> Loss {
        let classes = class_sizes.len() as f64;
        let total: usize = class_sizes.iter().sum();
        let prior: Vec<f32> =
            class_sizes.iter().map(|&n| ((n.max(1) as f64) / (total.max(1) as f64)).ln() as f32).collect();
        let raw: Vec<f64> = class_sizes
            .iter()
            .map(|&n| if n == 0 { 0.0 } else { (1.0 - settings.cb_beta) / (1.0 - settings.cb_beta.powi(n as i32)) })
            .collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f32> = raw.iter().map(|w| (w * classes / sum.max(f64::MIN_POSITIVE)) as f32).collect();
        let quarter: Vec<f64> = class_sizes.iter().map(|&n| (n.max(1) as f64).powf(-0.25)).collect();
        let largest = quarter.iter().cloned().fold(0.0, f64::max);
        let margins: Vec<f32> = quarter.iter().map(|m| (m * settings.ldam_max_margin / largest) as f32).collect();
        let on = |v: &[f32]| Tensor::from_slice(v).to_device(device);
        Loss { settings, log_prior: on(&prior), class_weights: on(&weights), margins: on(&margins) }
    }

    /// The mean loss of a batch: logits [B, C] (any float kind) against labels i64 [B], a 0-d
    /// tensor; or, for a fused group, logits [B, G, C] against labels [B, G], each member's mean
    /// loss as [G], computed by the same kernels for every group size.
    pub fn compute(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor {
        let s = &self.settings;
        let z = logits.to_kind(Kind::Float);
        match s.kind {
            LossKind::Ce => mean(&nll(&z, labels), None, labels),
            LossKind::Focal => mean(&focal(&z, labels, s.focal_gamma), None, labels),
            LossKind::CbCe => mean(&nll(&z, labels), Some(&self.class_weights), labels),
            LossKind::CbFocal => mean(&focal(&z, labels, s.focal_gamma), Some(&self.class_weights), labels),
            LossKind::BalancedSoftmax => mean(&nll(&(z + &self.log_prior), labels), None, labels),
            LossKind::LogitAdjust => mean(&nll(&(z + &self.log_prior * s.logit_adjust_tau), labels), None, labels),
            LossKind::LdamDrw => {
                let margin = per_label(&self.margins, labels).unsqueeze(-1);
                let onehot = z.zeros_like().scatter_value(-1, &labels.unsqueeze(-1), 1.0);
                let shifted = (z - onehot * margin) * s.ldam_scale;
                let weights = (epoch >= s.drw_epoch).then_some(&self.class_weights);
                mean(&nll(&shifted, labels), weights, labels)
            }
        }
    }
}

/// `per_class[label]` for every label, shaped like `labels`.
fn per_label(per_class: &Tensor, labels: &Tensor) -> Tensor {
    per_class.index_select(0, &labels.reshape([-1])).view(labels.size().as_slice())
}

/// -log softmax(z)_y per example, shaped like the labels.
fn nll(z: &Tensor, labels: &Tensor) -> Tensor {
    -z.log_softmax(-1, Kind::Float).gather(-1, &labels.unsqueeze(-1), false).squeeze_dim(-1)
}

/// (1 - p_y)^gamma * -log p_y per example, shaped like the labels.
fn focal(z: &Tensor, labels: &Tensor, gamma: f64) -> Tensor {
    let nll = nll(z, labels);
    let p: Tensor = (-&nll).exp();
    let modulator = p.neg().g_add_scalar(1.0).pow_tensor_scalar(gamma);
    modulator * nll
}

/// The mean over the batch (axis 0) of per-example losses, each scaled by its class weight when
/// given: a 0-d tensor for one network, [G] for a group.
fn mean(per_example: &Tensor, weights: Option<&Tensor>, labels: &Tensor) -> Tensor {
    let weighted = match weights {
        Some(w) => per_example * per_label(w, labels),
        None => per_example.shallow_clone(),
    };
    weighted.mean_dim(0, false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two examples, three classes; class sizes 100, 10, 1.
    const SIZES: [usize; 3] = [100, 10, 1];
    const LOGITS: [[f32; 3]; 2] = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]];
    const LABELS: [i64; 2] = [0, 2];

    fn settings(kind: LossKind) -> LossSettings {
        LossSettings {
            kind,
            focal_gamma: 2.0,
            cb_beta: 0.9,
            ldam_max_margin: 0.5,
            ldam_scale: 2.0,
            drw_epoch: 3,
            logit_adjust_tau: 0.5,
        }
    }

    fn logits() -> Tensor {
        Tensor::from_slice2(&LOGITS).set_requires_grad(true)
    }

    fn value(kind: LossKind, epoch: u32) -> f64 {
        Loss::new(settings(kind), &SIZES, Device::Cpu)
            .compute(&logits(), &Tensor::from_slice(&LABELS), epoch)
            .double_value(&[])
    }

    /// -log softmax(z)_y in f64, the reference every case is built from.
    fn nll_ref(z: [f64; 3], y: usize) -> f64 {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - z[y]
    }

    fn rows() -> [[f64; 3]; 2] {
        LOGITS.map(|r| r.map(|v| v as f64))
    }

    fn prior() -> [f64; 3] {
        SIZES.map(|n| (n as f64 / 111.0).ln())
    }

    /// (1 - 0.9) / (1 - 0.9^n), normalised to sum to 3.
    fn cb_weights() -> [f64; 3] {
        let raw = SIZES.map(|n| 0.1 / (1.0 - 0.9f64.powi(n as i32)));
        let sum: f64 = raw.iter().sum();
        raw.map(|w| w * 3.0 / sum)
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }

    #[test]
    fn cross_entropy_and_focal() {
        let [a, b] = rows();
        let (l0, l1) = (nll_ref(a, 0), nll_ref(b, 2));
        close(value(LossKind::Ce, 0), (l0 + l1) / 2.0);
        let f = |l: f64| (1.0 - (-l).exp()).powi(2) * l;
        close(value(LossKind::Focal, 0), (f(l0) + f(l1)) / 2.0);
        // Hand-computed: softmax of [2, 0.5, -1] gives p_0 = 0.785597; -ln p_0 = 0.241311.
        close(l0, 0.241311);
    }

    #[test]
    fn class_balanced_weights() {
        let [a, b] = rows();
        let w = cb_weights();
        // 0.9^100 ~ 0: the head weight is ~0.1; the single-image class weighs 1.
        assert!((w[2] / w[0] - 1.0 / 0.1).abs() < 1e-3);
        let (l0, l1) = (nll_ref(a, 0), nll_ref(b, 2));
        close(value(LossKind::CbCe, 0), (w[0] * l0 + w[2] * l1) / 2.0);
        let f = |l: f64| (1.0 - (-l).exp()).powi(2) * l;
        close(value(LossKind::CbFocal, 0), (w[0] * f(l0) + w[2] * f(l1)) / 2.0);
    }

    #[test]
    fn prior_shifted_losses() {
        let [a, b] = rows();
        let pi = prior();
        let shift = |z: [f64; 3], tau: f64| [z[0] + tau * pi[0], z[1] + tau * pi[1], z[2] + tau * pi[2]];
        close(value(LossKind::BalancedSoftmax, 0), (nll_ref(shift(a, 1.0), 0) + nll_ref(shift(b, 1.0), 2)) / 2.0);
        close(value(LossKind::LogitAdjust, 0), (nll_ref(shift(a, 0.5), 0) + nll_ref(shift(b, 0.5), 2)) / 2.0);
    }

    /// Margins n^(-1/4) scaled so the rarest class gets 0.5: 100 -> 0.5 / sqrt(10), 10 -> 0.5 / 10^0.25.
    fn ldam_inputs() -> ([f64; 3], [f64; 3]) {
        let m = [0.5 / 10f64.sqrt(), 0.5 / 10f64.powf(0.25), 0.5];
        let [a, b] = rows();
        ([2.0 * (a[0] - m[0]), 2.0 * a[1], 2.0 * a[2]], [2.0 * b[0], 2.0 * b[1], 2.0 * (b[2] - m[2])])
    }

    #[test]
    fn ldam_with_deferred_reweighting() {
        let (a, b) = ldam_inputs();
        close(value(LossKind::LdamDrw, 0), (nll_ref(a, 0) + nll_ref(b, 2)) / 2.0);
        let w = cb_weights();
        close(value(LossKind::LdamDrw, 3), (w[0] * nll_ref(a, 0) + w[2] * nll_ref(b, 2)) / 2.0);
    }

    fn softmax(z: [f64; 3]) -> [f64; 3] {
        let e = z.map(f64::exp);
        let s: f64 = e.iter().sum();
        e.map(|v| v / s)
    }

    fn grad(kind: LossKind, epoch: u32) -> Vec<Vec<f64>> {
        let z = logits();
        let loss = Loss::new(settings(kind), &SIZES, Device::Cpu).compute(&z, &Tensor::from_slice(&LABELS), epoch);
        loss.backward();
        let g = z.grad().to_kind(Kind::Double);
        (0..2).map(|i| (0..3).map(|j| g.double_value(&[i, j])).collect()).collect()
    }

    fn close_rows(got: Vec<Vec<f64>>, want: [[f64; 3]; 2]) {
        for (g, w) in got.iter().zip(want) {
            for (x, y) in g.iter().zip(w) {
                assert!((x - y).abs() < 1e-5, "got {got:?}, want {want:?}");
            }
        }
    }

    /// d/dz of mean CE(z + log pi) = (softmax(z + log pi) - e_y) / B.
    #[test]
    fn balanced_softmax_gradient() {
        let pi = prior();
        let want = rows().map(|z| softmax([z[0] + pi[0], z[1] + pi[1], z[2] + pi[2]]));
        let mut want = want;
        want[0][0] -= 1.0;
        want[1][2] -= 1.0;
        close_rows(grad(LossKind::BalancedSoftmax, 0), want.map(|r| r.map(|v| v / 2.0)));
    }

    /// d/dz of w_y CE(s (z - m_y e_y)) / B = w_y s (softmax(s (z - m_y e_y)) - e_y) / B.
    #[test]
    fn ldam_gradient_before_and_after_reweighting() {
        let (a, b) = ldam_inputs();
        let mut want = [softmax(a), softmax(b)];
        want[0][0] -= 1.0;
        want[1][2] -= 1.0;
        close_rows(grad(LossKind::LdamDrw, 0), want.map(|r| r.map(|v| 2.0 * v / 2.0)));
        let w = cb_weights();
        let weighted = [want[0].map(|v| w[0] * v), want[1].map(|v| w[2] * v)];
        close_rows(grad(LossKind::LdamDrw, 5), weighted.map(|r| r.map(|v| 2.0 * v / 2.0)));
    }

    /// A fused group's losses in one call: logits [B, G, C] and labels [B, G] give each member's
    /// mean loss, equal to the member's own batch computed alone, for every loss, before and
    /// after LDAM's deferred re-weighting.
    #[test]
    fn a_groups_losses_are_each_members_loss() {
        let loss = |kind| Loss::new(settings(kind), &SIZES, Device::Cpu);
        let logits = Tensor::randn([4, 3, 3], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 2, 1, 1, 0, 2, 2, 2, 0, 1, 1, 0]).view([4, 3]);
        for kind in LossKind::ALL {
            for epoch in [0, 5] {
                let group = Vec::<f64>::try_from(loss(kind).compute(&logits, &labels, epoch)).unwrap();
                assert_eq!(group.len(), 3);
                for (g, &together) in group.iter().enumerate() {
                    let alone = loss(kind).compute(&logits.select(1, g as i64), &labels.select(1, g as i64), epoch);
                    let alone = alone.double_value(&[]);
                    assert!(
                        (together - alone).abs() < 1e-6,
                        "{kind:?} epoch {epoch} member {g}: {together} vs {alone}"
                    );
                }
            }
        }
    }
}
