//! How a training epoch visits a (long-tailed) set: every image once (instance sampling), or a
//! class first and then an image of it, with class probabilities uniform (class-balanced) or
//! proportional to the square root of the class size (square-root sampling). An epoch draws as many
//! images as the set holds, and its order is a function of (seed, epoch) alone.

use crate::rng::{mix, Rng, Stream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Instance,
    ClassBalanced,
    Sqrt,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 3] = [SamplerKind::Instance, SamplerKind::ClassBalanced, SamplerKind::Sqrt];

    /// The name sweep files use.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Instance => "instance",
            SamplerKind::ClassBalanced => "class_balanced",
            SamplerKind::Sqrt => "sqrt",
        }
    }

    pub fn parse(s: &str) -> Result<SamplerKind, String> {
        SamplerKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<String> = SamplerKind::ALL.iter().map(|k| format!("\"{}\"", k.name())).collect();
            format!("expected one of {}, got \"{s}\"", names.join(", "))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Sampler {
    kind: SamplerKind,
    /// Image indices of each class, in stored order.
    by_class: Vec<Vec<i64>>,
    /// Cumulative class probabilities (the last is 1); empty for instance sampling.
    cumulative: Vec<f64>,
    len: usize,
}

impl Sampler {
    /// A sampler over a set with these labels (each in 0..classes).
    pub fn new(kind: SamplerKind, labels: &[i64], classes: usize) -> Sampler {
        let mut by_class = vec![Vec::new(); classes];
        for (i, &label) in labels.iter().enumerate() {
            by_class[label as usize].push(i as i64);
        }
        Sampler::over_classes(kind, by_class, labels.len())
    }

    /// A sampler over the image indices of each class (`len` images in all).
    fn over_classes(kind: SamplerKind, by_class: Vec<Vec<i64>>, len: usize) -> Sampler {
        let weight = |n: usize| -> f64 {
            match (n, kind) {
                (0, _) => 0.0,
                (_, SamplerKind::Sqrt) => (n as f64).sqrt(),
                _ => 1.0,
            }
        };
        let cumulative = if kind == SamplerKind::Instance {
            Vec::new()
        } else {
            let total: f64 = by_class.iter().map(|c| weight(c.len())).sum();
            let mut acc = 0.0;
            by_class
                .iter()
                .map(|c| {
                    acc += weight(c.len()) / total;
                    acc
                })
                .collect()
        };
        Sampler { kind, by_class, cumulative, len }
    }

    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// Images per class of the set the sampler draws from.
    pub fn class_sizes(&self) -> Vec<usize> {
        self.by_class.iter().map(Vec::len).collect()
    }

    /// The same set visited another way.
    pub fn with_kind(&self, kind: SamplerKind) -> Sampler {
        Sampler::over_classes(kind, self.by_class.clone(), self.len)
    }

    /// The image indices of one epoch. Instance sampling is the same permutation
    /// `data::train_batches` uses.
    pub fn order(&self, seed: u64, epoch: u64) -> Vec<i64> {
        let mut rng = Rng::new(mix(seed, epoch), Stream::EpochOrder);
        if self.kind == SamplerKind::Instance {
            return rng.permutation(self.len);
        }
        (0..self.len)
            .map(|_| {
                let u = rng.uniform();
                // The first class whose cumulative probability exceeds u; rounding can leave the
                // last entry a hair under 1, so fall back to the last non-empty class.
                let c = self
                    .cumulative
                    .iter()
                    .position(|&p| u < p)
                    .unwrap_or_else(|| self.by_class.iter().rposition(|c| !c.is_empty()).unwrap_or(0));
                let members = &self.by_class[c];
                members[rng.below(members.len() as u64) as usize]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classes of 400, 100 and 25 images.
    fn labels() -> Vec<i64> {
        [(0, 400), (1, 100), (2, 25)].iter().flat_map(|&(c, n)| std::iter::repeat_n(c, n)).collect()
    }

    fn class_shares(kind: SamplerKind) -> Vec<f64> {
        let labels = labels();
        let sampler = Sampler::new(kind, &labels, 3);
        let mut counts = [0usize; 3];
        let mut drawn = 0;
        for epoch in 0..40 {
            let order = sampler.order(5, epoch);
            assert_eq!(order.len(), labels.len());
            for i in order {
                counts[labels[i as usize] as usize] += 1;
                drawn += 1;
            }
        }
        counts.iter().map(|&c| c as f64 / drawn as f64).collect()
    }

    #[test]
    fn instance_sampling_is_a_permutation_shared_with_the_batches() {
        let labels = labels();
        let order = Sampler::new(SamplerKind::Instance, &labels, 3).order(3, 2);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..labels.len() as i64).collect::<Vec<_>>());
        assert_eq!(order, Rng::new(mix(3, 2), Stream::EpochOrder).permutation(labels.len()));
    }

    #[test]
    fn class_shares_follow_the_sampler() {
        let share = |kind| class_shares(kind);
        let near = |got: &[f64], want: [f64; 3]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.01);
        let instance = share(SamplerKind::Instance);
        assert!(near(&instance, [400.0 / 525.0, 100.0 / 525.0, 25.0 / 525.0]), "{instance:?}");
        let balanced = share(SamplerKind::ClassBalanced);
        assert!(near(&balanced, [1.0 / 3.0; 3]), "{balanced:?}");
        // sqrt sizes 20, 10, 5 out of 35.
        let sqrt = share(SamplerKind::Sqrt);
        assert!(near(&sqrt, [20.0 / 35.0, 10.0 / 35.0, 5.0 / 35.0]), "{sqrt:?}");
    }

    #[test]
    fn orders_depend_on_seed_and_epoch_only() {
        let labels = labels();
        let a = Sampler::new(SamplerKind::ClassBalanced, &labels, 3);
        assert_eq!(a.order(1, 4), a.order(1, 4));
        assert_ne!(a.order(1, 4), a.order(1, 5));
        assert_ne!(a.order(1, 4), a.order(2, 4));
    }

    #[test]
    fn another_kind_keeps_the_classes() {
        let labels = labels();
        let instance = Sampler::new(SamplerKind::Instance, &labels, 3);
        assert_eq!(instance.class_sizes(), [400, 100, 25]);
        let balanced = instance.with_kind(SamplerKind::ClassBalanced);
        assert_eq!(balanced.kind(), SamplerKind::ClassBalanced);
        assert_eq!(balanced.order(4, 1), Sampler::new(SamplerKind::ClassBalanced, &labels, 3).order(4, 1));
    }

    #[test]
    fn empty_classes_are_never_drawn() {
        let labels = vec![0, 0, 2, 2, 2];
        let order = Sampler::new(SamplerKind::ClassBalanced, &labels, 4).order(0, 0);
        assert!(order.iter().all(|&i| labels[i as usize] != 1 && labels[i as usize] != 3));
    }
}
