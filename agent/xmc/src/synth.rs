//! Synthetic XC data sets: documents drawn from latent topics, labels with power-law frequencies
//! correlated through the topics, written in the real BoW format so the real reader is what runs.
//!
//! Each label belongs to one topic and one facet, and has a signature of a few words of its own. A
//! word of a label comes from its facet's vocabulary, its signature, or its topic's vocabulary. A
//! document picks a first label by global popularity, more labels mostly from the same topic, and
//! words from its labels and (with probability `noise`) from a Zipf-distributed background.
//! Facets are shared across topics, so a label is mostly the conjunction (topic, facet): a tree
//! that groups labels by topic or facet needs only linear decisions at every node, while a node
//! holding a random half of the labels asks an XOR-like question no linear classifier answers.
//! That is the structure that makes the choice of tree matter; `noise` sets how hard the task is.

use crate::bow::Dataset;
use crate::sparse::Csr;
use sweep_spec::sample::SplitMix64;

/// The shape and difficulty of a synthetic set; every knob is named so a study can change it.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthShape {
    pub train: usize,
    pub test: usize,
    pub features: usize,
    pub labels: usize,
    pub topics: usize,
    /// Mean labels per point (at least one each).
    pub labels_per_point: f64,
    /// Mean words per point, before duplicates merge.
    pub words_per_point: f64,
    /// Probability that a word is background noise rather than drawn from the point's labels.
    pub noise: f64,
    /// Probability that a further label of a point comes from any topic rather than the first label's.
    pub cross_topic: f64,
    /// Exponent of the power law of label popularity (frequency of the r-th label ∝ r^-zipf).
    pub zipf: f64,
    /// Words of each topic's vocabulary.
    pub topic_words: usize,
    /// Facets (vocabularies shared across topics), and words of each.
    pub facets: usize,
    pub facet_words: usize,
    /// Words of a label's own signature.
    pub own_signature: usize,
    /// Probability that a label's word comes from its facet; else from its signature with
    /// probability `signature_share`; else from its topic.
    pub facet_share: f64,
    pub signature_share: f64,
    pub seed: u64,
}

impl Default for SynthShape {
    /// The small study's set: ~2,000 labels, minutes on a CPU.
    fn default() -> Self {
        SynthShape {
            train: 10_000,
            test: 2_000,
            features: 5_000,
            labels: 2_000,
            topics: 100,
            labels_per_point: 3.0,
            words_per_point: 40.0,
            noise: 0.5,
            cross_topic: 0.2,
            zipf: 1.0,
            topic_words: 40,
            facets: 20,
            facet_words: 10,
            own_signature: 2,
            facet_share: 0.5,
            signature_share: 0.1,
            seed: 0,
        }
    }
}

impl SynthShape {
    /// Checks that the shape can be drawn; the message names the knob.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("features", self.features),
            ("labels", self.labels),
            ("topics", self.topics),
            ("topic_words", self.topic_words),
            ("facets", self.facets),
            ("facet_words", self.facet_words),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name}: expected an integer >= 1, got 0"));
        }
        if self.topics > self.labels {
            return Err(format!("topics: expected at most labels ({}), got {}", self.labels, self.topics));
        }
        if self.topic_words > self.features {
            return Err(format!(
                "topic_words: expected at most features ({}), got {}",
                self.features, self.topic_words
            ));
        }
        for (name, p) in
            [("noise", self.noise), ("cross_topic", self.cross_topic), ("signature_share", self.signature_share)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name}: expected a probability in [0, 1], got {p}"));
            }
        }
        if self.labels_per_point < 1.0 || self.words_per_point < 1.0 || self.zipf < 0.0 {
            return Err("labels_per_point and words_per_point: expected >= 1; zipf: expected >= 0".into());
        }
        if self.own_signature == 0 && self.signature_share > 0.0 {
            return Err("own_signature: expected at least one word when signature_share > 0".into());
        }
        Ok(())
    }
}

/// Samples an index with probability proportional to its weight, by binary search of the CDF.
struct Cdf(Vec<f64>);

impl Cdf {
    fn new(weights: impl Iterator<Item = f64>) -> Cdf {
        let mut total = 0.0;
        Cdf(weights
            .map(|w| {
                total += w;
                total
            })
            .collect())
    }
    fn sample(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64() * self.0.last().copied().unwrap_or(0.0);
        self.0.partition_point(|&c| c <= u).min(self.0.len() - 1)
    }
}

fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Poisson by Knuth's product of uniforms in chunks of mean 30, exact and fast for the means here.
fn poisson(rng: &mut SplitMix64, mean: f64) -> usize {
    let mut left = mean;
    let mut n = 0;
    while left > 0.0 {
        let m = left.min(30.0);
        left -= m;
        let limit = (-m).exp();
        let mut p = rng.next_f64();
        while p > limit {
            n += 1;
            p *= rng.next_f64();
        }
    }
    n
}

/// The latent structure shared by the train and test points.
struct World {
    label_cdf: Cdf,
    topic_of: Vec<u32>,
    facet_of: Vec<u32>,
    topic_labels: Vec<Vec<u32>>,
    topic_cdfs: Vec<Cdf>,
    vocab: Vec<Vec<u32>>,
    facet_vocab: Vec<Vec<u32>>,
    signature: Vec<Vec<u32>>,
    background: Cdf,
}

impl World {
    fn draw(s: &SynthShape, rng: &mut SplitMix64) -> World {
        // Popularity ranks are a random permutation, so label ids say nothing about frequency.
        let mut rank: Vec<usize> = (0..s.labels).collect();
        for i in (1..rank.len()).rev() {
            rank.swap(i, below(rng, i + 1));
        }
        let weight: Vec<f64> = rank.iter().map(|&r| (r as f64 + 1.0).powf(-s.zipf)).collect();
        // Every topic gets at least one label; the rest are spread at random.
        let topic_of: Vec<u32> =
            (0..s.labels).map(|l| if l < s.topics { l as u32 } else { below(rng, s.topics) as u32 }).collect();
        let mut topic_labels = vec![Vec::new(); s.topics];
        for (l, &t) in topic_of.iter().enumerate() {
            topic_labels[t as usize].push(l as u32);
        }
        let topic_cdfs = topic_labels.iter().map(|ls| Cdf::new(ls.iter().map(|&l| weight[l as usize]))).collect();
        let words =
            |n: usize, rng: &mut SplitMix64| -> Vec<u32> { (0..n).map(|_| below(rng, s.features) as u32).collect() };
        let vocab: Vec<Vec<u32>> = (0..s.topics).map(|_| words(s.topic_words, rng)).collect();
        let facet_vocab: Vec<Vec<u32>> = (0..s.facets).map(|_| words(s.facet_words, rng)).collect();
        // Within a topic, labels take facets in turn from a per-topic offset, so (topic, facet)
        // pairs repeat only when a topic has more labels than there are facets.
        let mut facet_of = vec![0u32; s.labels];
        for (t, ls) in topic_labels.iter().enumerate() {
            let offset = below(rng, s.facets);
            for (j, &l) in ls.iter().enumerate() {
                facet_of[l as usize] = ((offset + j + t) % s.facets) as u32;
            }
        }
        let signature = (0..s.labels).map(|_| words(s.own_signature, rng)).collect();
        // Background words follow Zipf's law over a random ordering of the vocabulary.
        let background = Cdf::new((0..s.features).map(|r| 1.0 / (r as f64 + 1.0)));
        World {
            label_cdf: Cdf::new(weight.into_iter()),
            topic_of,
            facet_of,
            topic_labels,
            topic_cdfs,
            vocab,
            facet_vocab,
            signature,
            background,
        }
    }

    fn point(&self, s: &SynthShape, rng: &mut SplitMix64, word_ids: &[u32], x: &mut Csr, y: &mut Csr) {
        let first = self.label_cdf.sample(rng);
        let topic = self.topic_of[first] as usize;
        let mut labels = vec![first as u32];
        let extra = poisson(rng, s.labels_per_point - 1.0);
        for _ in 0..extra {
            let l = if rng.next_f64() < s.cross_topic {
                self.label_cdf.sample(rng) as u32
            } else {
                self.topic_labels[topic][self.topic_cdfs[topic].sample(rng)]
            };
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        let words = poisson(rng, s.words_per_point).max(1);
        let mut counts: Vec<(u32, f32)> = Vec::with_capacity(words);
        for _ in 0..words {
            let word = if rng.next_f64() < s.noise {
                word_ids[self.background.sample(rng)]
            } else {
                let l = labels[below(rng, labels.len())] as usize;
                let u = rng.next_f64();
                let from = if u < s.facet_share {
                    &self.facet_vocab[self.facet_of[l] as usize]
                } else if u < s.facet_share + (1.0 - s.facet_share) * s.signature_share {
                    &self.signature[l]
                } else {
                    &self.vocab[self.topic_of[l] as usize]
                };
                from[below(rng, from.len())]
            };
            counts.push((word, 1.0));
        }
        counts.sort_unstable_by_key(|&(w, _)| w);
        let mut idx: Vec<u32> = Vec::new();
        let mut val: Vec<f32> = Vec::new();
        for (w, c) in counts {
            if idx.last() == Some(&w) {
                *val.last_mut().unwrap() += c;
            } else {
                idx.push(w);
                val.push(c);
            }
        }
        // Sublinear term frequency, unit length: the usual weighting of BoW benchmark files.
        val.iter_mut().for_each(|v| *v = (1.0 + *v).ln());
        let norm = val.iter().map(|v| v * v).sum::<f32>().sqrt();
        val.iter_mut().for_each(|v| *v /= norm);
        x.push_row(&idx, &val);
        labels.sort_unstable();
        y.push_row(&labels, &vec![1.0; labels.len()]);
    }
}

/// Draws a train and a test set from one latent world.
pub fn generate(s: &SynthShape) -> (Dataset, Dataset) {
    let mut rng = SplitMix64::new(s.seed);
    let world = World::draw(s, &mut rng);
    let mut word_ids: Vec<u32> = (0..s.features as u32).collect();
    for i in (1..word_ids.len()).rev() {
        word_ids.swap(i, below(&mut rng, i + 1));
    }
    let mut set = |n: usize| {
        let (mut x, mut y) = (Csr::empty(s.features), Csr::empty(s.labels));
        for _ in 0..n {
            world.point(s, &mut rng, &word_ids, &mut x, &mut y);
        }
        Dataset { x, y }
    };
    let train = set(s.train);
    let test = set(s.test);
    (train, test)
}

/// Writes `train.txt` and `test.txt` into `dir` (which must exist).
pub fn write(s: &SynthShape, dir: &std::path::Path) -> anyhow::Result<()> {
    s.validate().map_err(|e| anyhow::anyhow!("synthetic xc shape: {e}"))?;
    let (train, test) = generate(s);
    for (name, d) in [("train.txt", &train), ("test.txt", &test)] {
        let path = dir.join(name);
        crate::bow::write(&path, d).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_power_law_hold() {
        let s = SynthShape { train: 3000, test: 500, seed: 3, ..SynthShape::default() };
        let (train, test) = generate(&s);
        assert_eq!((train.points(), test.points()), (3000, 500));
        assert_eq!((train.features(), train.labels()), (s.features, s.labels));
        let mut freq = vec![0usize; s.labels];
        for &l in &train.y.indices {
            freq[l as usize] += 1;
        }
        freq.sort_unstable_by(|a, b| b.cmp(a));
        // Head labels are far more frequent than the median label.
        assert!(freq[0] > 20 * freq[s.labels / 2].max(1), "{:?}", &freq[..5]);
        let mean = train.y.nnz() as f64 / train.points() as f64;
        assert!((2.0..=3.5).contains(&mean), "labels per point {mean}");
        assert_eq!(generate(&s).0, train, "the seed fixes the data");
    }

    #[test]
    fn written_files_read_back() {
        let s = SynthShape { train: 200, test: 50, labels: 300, topics: 20, ..SynthShape::default() };
        let dir = tempfile::tempdir().unwrap();
        write(&s, dir.path()).unwrap();
        let (train, test) = generate(&s);
        assert_eq!(crate::bow::read(&dir.path().join("train.txt")).unwrap(), train);
        assert_eq!(crate::bow::read(&dir.path().join("test.txt")).unwrap(), test);
    }
}
