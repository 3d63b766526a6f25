//! The seeded side of the chaos suite: a small deterministic generator, the shuffled list of faults
//! a run injects, and the log of what was actually done and when, printed when a run fails.
//! The same seed gives the same fault order and delays; process timing still varies.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// The project's SplitMix64, with the draws a fault schedule needs.
#[derive(Debug, Clone)]
pub struct Rng(sweep_spec::sample::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(sweep_spec::sample::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.range(0, i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// One thing the suite does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL one agent (its trials die with it), then start it again.
    KillAgent,
    /// SIGKILL the coordinator, then start it again on the same port, state and results.
    KillCoordinator,
    /// Stop the proxy between agents and coordinator for longer than the lease TTL.
    CutNetwork,
    /// Lease trials as an extra agent and send duplicate, reordered and stale reports.
    ReplayReports,
}

/// How many of each fault a run injects.
#[derive(Debug, Clone, Copy)]
pub struct FaultCounts {
    pub agent_kills: u32,
    pub coordinator_kills: u32,
    pub network_cuts: u32,
    pub replays: u32,
}

/// The faults of a run in a seeded order.
pub fn schedule(counts: FaultCounts, rng: &mut Rng) -> Vec<Fault> {
    let mut all = Vec::new();
    all.extend(std::iter::repeat_n(Fault::KillAgent, counts.agent_kills as usize));
    all.extend(std::iter::repeat_n(Fault::KillCoordinator, counts.coordinator_kills as usize));
    all.extend(std::iter::repeat_n(Fault::CutNetwork, counts.network_cuts as usize));
    all.extend(std::iter::repeat_n(Fault::ReplayReports, counts.replays as usize));
    rng.shuffle(&mut all);
    all
}

/// Timestamped lines of what the suite did, shared by the driver and its helpers.
pub struct FaultLog {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl FaultLog {
    pub fn new() -> FaultLog {
        FaultLog { start: Instant::now(), lines: Mutex::new(Vec::new()) }
    }

    pub fn note(&self, line: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs_f64();
        let text = format!("[{t:8.3}s] {}", line.as_ref());
        if std::env::var_os("SWEEP_CHAOS_VERBOSE").is_some() {
            eprintln!("{text}");
        }
        self.lines.lock().expect("fault log").push(text);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in self.lines.lock().expect("fault log").iter() {
            let _ = writeln!(out, "{l}");
        }
        out
    }
}

impl Default for FaultLog {
    fn default() -> Self {
        FaultLog::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let counts = FaultCounts { agent_kills: 6, coordinator_kills: 2, network_cuts: 1, replays: 1 };
        let a = schedule(counts, &mut Rng::new(7));
        let b = schedule(counts, &mut Rng::new(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
        assert_eq!(a.iter().filter(|f| **f == Fault::KillCoordinator).count(), 2);
    }

    #[test]
    fn range_stays_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let x = r.range(3, 9);
            assert!((3..9).contains(&x));
        }
        assert_eq!(r.range(5, 5), 5);
    }
}
