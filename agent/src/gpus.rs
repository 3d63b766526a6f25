//! The agent's GPUs: which exist, and how much of each is given to trials. Trials get whole GPUs
//! through CUDA_VISIBLE_DEVICES, so `Device::cuda_if_available()` inside a trial means its own
//! share; trials that ask for a `gpu_share` below 1 share one GPU, each in its own process.

use sweep_spec::packing;

/// GPU indices `nvidia-smi` lists, or none when there is no driver.
pub fn detect() -> Vec<String> {
    nvidia_smi("index").unwrap_or_default()
}

/// Free memory of each GPU in bytes, as the driver reports it, in `detect()` order; empty when
/// there is no driver.
pub fn free_memory() -> Vec<u64> {
    nvidia_smi("memory.free")
        .map(|lines| lines.iter().map(|mib| mib.parse::<u64>().map_or(0, |m| m << 20)).collect())
        .unwrap_or_default()
}

fn nvidia_smi(query: &str) -> Option<Vec<String>> {
    let out = std::process::Command::new("nvidia-smi")
        .args([&format!("--query-gpu={query}"), "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
}

#[derive(Debug, Clone)]
pub struct GpuPool {
    /// Each GPU and the share of it not given to trials (1 free, 0 taken whole), in index order.
    gpus: Vec<(String, f64)>,
}

/// GPUs handed to one launch, to give back when it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taken {
    pub gpus: Vec<String>,
    /// The share of `gpus[0]` taken, for a shared trial; None: the GPUs whole.
    pub share: Option<f64>,
}

impl GpuPool {
    pub fn new(gpus: &[String]) -> GpuPool {
        GpuPool { gpus: gpus.iter().map(|g| (g.clone(), 1.0)).collect() }
    }

    /// GPUs nothing runs on.
    pub fn free(&self) -> u32 {
        self.gpus.iter().filter(|(_, left)| packing::is_free(*left)).count() as u32
    }

    /// The share of each GPU not given to trials, in index order.
    pub fn free_shares(&self) -> Vec<f64> {
        self.gpus.iter().map(|(_, left)| left.clamp(0.0, 1.0)).collect()
    }

    /// `n` free GPUs, lowest indices first; or with a `share`, one GPU with that much left, the
    /// fullest that fits (`sweep_spec::packing`, as the coordinator chose). None if nothing fits.
    pub fn take(&mut self, n: u32, share: Option<f64>) -> Option<Taken> {
        match share {
            None => {
                let free: Vec<usize> =
                    (0..self.gpus.len()).filter(|&i| packing::is_free(self.gpus[i].1)).take(n as usize).collect();
                if free.len() < n as usize {
                    return None;
                }
                for &i in &free {
                    self.gpus[i].1 = 0.0;
                }
                Some(Taken { gpus: free.iter().map(|&i| self.gpus[i].0.clone()).collect(), share: None })
            }
            Some(s) => {
                let i = packing::fullest_fitting(self.gpus.iter().map(|(_, left)| *left), s, |_| true)?;
                self.gpus[i].1 -= s;
                Some(Taken { gpus: vec![self.gpus[i].0.clone()], share: Some(s) })
            }
        }
    }

    pub fn give_back(&mut self, taken: Taken) {
        for g in &taken.gpus {
            if let Some((_, left)) = self.gpus.iter_mut().find(|(id, _)| id == g) {
                *left = match taken.share {
                    Some(s) => (*left + s).min(1.0),
                    None => 1.0,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_and_returns_whole_gpus() {
        let mut pool = GpuPool::new(&["0".into(), "1".into(), "2".into()]);
        let a = pool.take(2, None).unwrap();
        assert_eq!(a.gpus, vec!["0", "1"]);
        assert!(pool.take(2, None).is_none());
        assert_eq!(pool.take(0, None).unwrap().gpus, Vec::<String>::new());
        pool.give_back(a);
        assert_eq!(pool.free(), 3);
    }

    #[test]
    fn shared_trials_pack_onto_one_gpu_and_leave_the_rest_whole() {
        let mut pool = GpuPool::new(&["0".into(), "1".into()]);
        let quarters: Vec<Taken> = (0..4).map(|_| pool.take(1, Some(0.25)).unwrap()).collect();
        assert!(quarters.iter().all(|t| t.gpus == vec!["0"]), "{quarters:?}");
        assert_eq!(pool.free(), 1);
        assert_eq!(pool.free_shares(), vec![0.0, 1.0]);
        assert!(pool.take(2, None).is_none(), "GPU 0 is full of shared trials");
        let whole = pool.take(1, None).unwrap();
        assert_eq!(whole.gpus, vec!["1"]);
        assert!(pool.take(1, Some(0.25)).is_none());
        for t in quarters {
            pool.give_back(t);
        }
        pool.give_back(whole);
        assert_eq!(pool.free_shares(), vec![1.0, 1.0]);
        let tenths: Vec<Taken> = (0..10).filter_map(|_| pool.take(1, Some(0.1))).collect();
        assert!(tenths.iter().all(|t| t.gpus == vec!["0"]), "ten tenths fit one GPU despite rounding");
    }
}
