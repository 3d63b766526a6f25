//! SIGTERM as a request to stop at the next batch boundary with a checkpoint, so a preempted or
//! cancelled trial loses no finished work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag raised by SIGTERM or SIGUSR1 (the drain signal Slurm sends before a time limit).
    pub fn on_signals() -> std::io::Result<StopFlag> {
        let flag = StopFlag::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.0.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.0.clone())?;
        Ok(flag)
    }

    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
