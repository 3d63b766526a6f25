//! SplitMix64, the engine's random number generator: a few lines of integer arithmetic, so the
//! same seed gives the same numbers on every machine and with every version of every dependency.

/// A SplitMix64 generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    /// The generator for stream `index` of `seed`: streams of one seed, and the same index under
    /// different seeds, do not overlap in any way that matters to a game.
    pub(crate) fn stream(seed: u64, index: u64) -> Self {
        Self { state: mix(seed ^ mix(index.wrapping_add(GOLDEN_GAMMA))) }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A uniform float in [0, 1), from the top 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A number in `0..n` (`n` > 0), by the multiply-shift reduction; its bias of at most n/2^64
    /// is irrelevant for choosing among a few dozen moves.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // SplitMix64 seeded with 1234567, from the reference implementation (xoshiro's authors).
        let mut rng = SplitMix64 { state: 1_234_567 };
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = SplitMix64::stream(7, 3);
        for n in 1..50 {
            assert!(rng.below(n) < n);
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
        assert_ne!(SplitMix64::stream(7, 3).next_u64(), SplitMix64::stream(7, 4).next_u64());
        assert_ne!(SplitMix64::stream(7, 3).next_u64(), SplitMix64::stream(8, 3).next_u64());
    }
}
