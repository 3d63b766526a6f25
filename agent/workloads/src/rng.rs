//! The seeded random source of every workload: data, label noise, initialisation and shuffling.
//!
//! It lives in Rust rather than in libtorch's global generator so that a trial's randomness depends
//! only on its seed, not on which thread or test touched `tch::manual_seed` last, nor on the
//! libtorch version.

use sweep_spec::sample::SplitMix64;

/// A seeded stream of the project's one generator, SplitMix64, with the draws workloads need.
#[derive(Debug, Clone)]
pub struct Rng {
    inner: SplitMix64,
}

/// Independent uses of one seed draw from separate streams, so that, say, a wider model never
/// changes the data or the label noise of the same seed.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Teacher = 1,
    TrainInputs = 2,
    TestInputs = 3,
    LabelNoise = 4,
    Init = 5,
    Shuffle = 6,
    Features = 7,
    /// The class templates of the synthetic image sets (`data::synthetic`).
    ImageTemplates = 8,
    ImageTrain = 9,
    ImageTest = 10,
    /// The order of one training epoch (`data::batches`), keyed by (seed, epoch).
    EpochOrder = 11,
    /// Random crops and flips of one batch, keyed by (seed, epoch, batch index).
    Augment = 12,
    /// The start vectors of Lanczos (`edge_of_stability`), keyed by (seed, step).
    Lanczos = 13,
    /// The weights random pruning removes (`sparsity`), keyed by (seed, epoch).
    Pruning = 14,
    /// Where a single sequence is cut into source and target (`seq2seq`), keyed by (seed, epoch)
    /// in training and by the seed alone for evaluation.
    SplitPoints = 15,
    /// The pictures of the synthetic CUB set (`data::cub`), keyed by (seed, image id).
    CubImages = 16,
    /// The sentences of the synthetic CUB set, keyed by (seed, image id): a stream apart from the
    /// pictures, so that another image size leaves the text as it was.
    CubText = 17,
    /// Which caption a multimodal example shows and which modality dropout takes from it, keyed
    /// by (seed, epoch, example) in training and by (seed, example) for evaluation.
    Modalities = 18,
}

/// Combines a seed with a counter (an epoch, a batch index) into a new seed; one SplitMix step
/// keeps neighbouring epochs and batches uncorrelated. Everything keyed by (seed, epoch, batch)
/// derives its seed here.
pub fn mix(seed: u64, counter: u64) -> u64 {
    Rng::new(seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15), Stream::Augment).next_u64()
}

impl Rng {
    pub fn new(seed: u64, stream: Stream) -> Rng {
        // Mixing the stream into the seed through one SplitMix step decorrelates neighbouring seeds.
        let mut rng = Rng { inner: SplitMix64::new(seed ^ (stream as u64).wrapping_mul(0xD2B7_4407_B1CE_6E93)) };
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        self.inner.next_f64()
    }

    /// Uniform integer in [0, bound); Lemire's multiply-shift, bias below 2^-64 * bound.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Standard normal by Box-Muller; one draw per call keeps the stream position simple to reason about.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1], so the log is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn normals(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.normal() as f32).collect()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(3, Stream::Init);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(3, Stream::Init);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(3, Stream::Shuffle);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normals_have_unit_moments() {
        let xs = Rng::new(0, Stream::TrainInputs).normals(200_000);
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Rng::new(9, Stream::Shuffle).permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<i64>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<i64>>());
    }
}
