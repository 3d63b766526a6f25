//! Reproducible random search: a small seeded generator and the distributions a sweep file names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// SplitMix64: tiny, fast and good enough to spread hyper-parameter samples. Deterministic, so a
/// sweep file expands to the same trials on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Nearly uniform in `0..n` (bias below n / 2^64) by a multiply and a shift instead of a
    /// division: for shuffles in hot loops.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// As JSON, the form a sweep file writes: `{"log_uniform": [1e-4, 0.1]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Uniform(f64, f64),
    LogUniform(f64, f64),
    /// Inclusive on both ends.
    IntUniform(i64, i64),
    Choice(Vec<Value>),
}

impl Distribution {
    /// What bounds it needs to draw, when it cannot: every draw must be finite (JSON has no NaN or
    /// infinity) and an integer span must fit an i64. The sweep file and the coordinator, for a
    /// space a client sent, check through here.
    pub fn check(&self) -> Result<(), &'static str> {
        let span = |lo: f64, hi: f64| lo < hi && (hi - lo).is_finite();
        match *self {
            Distribution::Uniform(lo, hi) if !span(lo, hi) => Err("two finite numbers [lo, hi] with lo < hi"),
            Distribution::LogUniform(lo, hi) if !span(lo, hi) => Err("finite numbers with 0 < lo < hi"),
            Distribution::LogUniform(lo, _) if lo <= 0.0 => Err("0 < lo < hi"),
            Distribution::IntUniform(lo, hi) if !(lo <= hi && hi.checked_sub(lo).is_some_and(|d| d < i64::MAX)) => {
                Err("two integers [lo, hi] with lo <= hi and hi - lo < 2^63 - 1")
            }
            Distribution::Choice(ref options) if options.is_empty() => Err("a non-empty array of options"),
            _ => Ok(()),
        }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> Value {
        match self {
            Distribution::Uniform(lo, hi) => json_f64(lo + (hi - lo) * rng.next_f64()),
            Distribution::LogUniform(lo, hi) => json_f64((lo.ln() + (hi.ln() - lo.ln()) * rng.next_f64()).exp()),
            Distribution::IntUniform(lo, hi) => {
                let span = (hi - lo) as u64 + 1;
                Value::from(lo + (rng.next_u64() % span) as i64)
            }
            Distribution::Choice(options) => options[(rng.next_u64() % options.len() as u64) as usize].clone(),
        }
    }
}

/// A conditional parameter of a space (`when = { optimizer = "sgd" }`): it is drawn only when each
/// named parameter, drawn before it, has one of the listed values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct When(pub Vec<(String, Vec<Value>)>);

impl When {
    pub fn holds(&self, drawn: &Map<String, Value>) -> bool {
        self.0.iter().all(|(name, values)| drawn.get(name).is_some_and(|v| values.contains(v)))
    }
}

/// The condition of `name` among a space's `when`s, if it has one.
pub fn condition<'a>(when: &'a [(String, When)], name: &str) -> Option<&'a When> {
    when.iter().find(|(k, _)| k == name).map(|(_, w)| w)
}

/// One draw of a space, parameter by parameter in its order, leaving out those whose condition
/// the parameters drawn before them do not meet.
pub fn draw(dists: &[(String, Distribution)], when: &[(String, When)], rng: &mut SplitMix64) -> Map<String, Value> {
    let mut drawn = Map::new();
    for (name, dist) in dists {
        if condition(when, name).is_none_or(|w| w.holds(&drawn)) {
            drawn.insert(name.clone(), dist.sample(rng));
        }
    }
    drawn
}

pub(crate) fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_in_bounds() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..2000 {
            let u = Distribution::Uniform(-1.0, 2.0).sample(&mut rng).as_f64().unwrap();
            assert!((-1.0..2.0).contains(&u));
            let l = Distribution::LogUniform(1e-5, 1e-2).sample(&mut rng).as_f64().unwrap();
            assert!((1e-5..=1e-2).contains(&l));
            let i = Distribution::IntUniform(3, 5).sample(&mut rng).as_i64().unwrap();
            assert!((3..=5).contains(&i));
        }
    }

    #[test]
    fn int_uniform_reaches_both_ends() {
        let mut rng = SplitMix64::new(1);
        let seen: std::collections::BTreeSet<i64> =
            (0..200).map(|_| Distribution::IntUniform(0, 2).sample(&mut rng).as_i64().unwrap()).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn below_covers_its_range_evenly() {
        let mut rng = SplitMix64::new(3);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn same_seed_same_draws() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
