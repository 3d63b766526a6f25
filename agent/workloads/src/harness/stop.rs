//! SIGTERM as a request to stop at the next batch boundary with a checkpoint, so a preempted or
//! cancelled trial loses no finished work.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct StopFlag {
    raised: Arc<AtomicBool>,
    /// Checks left before the flag raises itself; 0 means never (tests stop at a chosen batch).
    countdown: Arc<AtomicU64>,
}

impl StopFlag {
    /// A flag raised by SIGTERM or SIGUSR1 (the drain signal Slurm sends before a time limit).
    pub fn on_signals() -> std::io::Result<StopFlag> {
        let flag = StopFlag::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.raised.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.raised.clone())?;
        Ok(flag)
    }

    /// A flag that raises itself on its `checks`-th check: a stop at an exact batch, as a signal
    /// arriving then would cause.
    pub fn after_checks(checks: u64) -> StopFlag {
        let flag = StopFlag::default();
        flag.countdown.store(checks, Ordering::SeqCst);
        flag
    }

    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        let left = self.countdown.load(Ordering::SeqCst);
        if left > 0 && self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.raise();
        }
        self.raised.load(Ordering::SeqCst)
    }
}
