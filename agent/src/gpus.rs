//! The agent's GPUs: which exist, and which are free. Trials get whole GPUs through
//! CUDA_VISIBLE_DEVICES, so `Device::cuda_if_available()` inside a trial means its own share.

use std::collections::BTreeSet;

/// GPU indices `nvidia-smi` lists, or none when there is no driver.
pub fn detect() -> Vec<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=index", "--format=csv,noheader"]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub struct GpuPool {
    free: BTreeSet<String>,
}

impl GpuPool {
    pub fn new(gpus: &[String]) -> GpuPool {
        GpuPool { free: gpus.iter().cloned().collect() }
    }

    pub fn free(&self) -> u32 {
        self.free.len() as u32
    }

    /// Takes `n` GPUs, lowest indices first, or none if fewer are free.
    pub fn take(&mut self, n: u32) -> Option<Vec<String>> {
        if (n as usize) > self.free.len() {
            return None;
        }
        let taken: Vec<String> = self.free.iter().take(n as usize).cloned().collect();
        for g in &taken {
            self.free.remove(g);
        }
        Some(taken)
    }

    pub fn give_back(&mut self, gpus: Vec<String>) {
        self.free.extend(gpus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_and_returns_whole_gpus() {
        let mut pool = GpuPool::new(&["0".into(), "1".into(), "2".into()]);
        let a = pool.take(2).unwrap();
        assert_eq!(a, vec!["0", "1"]);
        assert!(pool.take(2).is_none());
        assert_eq!(pool.take(0).unwrap(), Vec::<String>::new());
        pool.give_back(a);
        assert_eq!(pool.free(), 3);
    }
}
