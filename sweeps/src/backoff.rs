//! The one retry primitive: exponential backoff with full jitter and a cap.
//!
//! Callers pass the random draw in, so the delay is a pure function and tests need no clock.

use std::time::Duration;

/// Delay before retry number `attempt` (0-based): uniform in `[0, min(cap, base * 2^attempt))`,
/// with `unit` a random draw in `[0, 1)`.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = base.checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).unwrap_or(cap).min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A cheap random draw in `[0, 1)` for jitter, seeded from the clock and a counter.
/// Jitter only has to decorrelate clients; it is not cryptographic.
pub fn jitter_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut rng = crate::sample::SplitMix64::new(nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32));
    rng.next_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_until_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        let almost_one = 0.999_999;
        assert!(full_jitter(0, base, cap, almost_one) < Duration::from_millis(100));
        assert!(full_jitter(3, base, cap, almost_one) > Duration::from_millis(790));
        assert!(full_jitter(3, base, cap, almost_one) < Duration::from_millis(800));
        assert!(full_jitter(40, base, cap, almost_one) <= cap);
        assert_eq!(full_jitter(5, base, cap, 0.0), Duration::ZERO);
    }

    #[test]
    fn jitter_draws_stay_in_range() {
        for _ in 0..1000 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
