//! Mixed precision: forward passes in bfloat16 autocast regions (weights stay float32, the
//! optimizer updates float32), through the C++ shim in `csrc/autocast.cpp`.

use tch::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// bfloat16 autocast: matmuls and convolutions in bf16, reductions and losses in f32.
    Bf16,
}

impl Precision {
    /// `auto` is bf16 on CUDA (tensor cores) and f32 on the CPU, where bf16 is slower on most chips.
    pub fn parse(value: &str, device: Device) -> Result<Precision, String> {
        match value {
            "auto" if device.is_cuda() => Ok(Precision::Bf16),
            "auto" | "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("params.precision: expected \"auto\", \"fp32\" or \"bf16\", got \"{other}\"")),
        }
    }
}

extern "C" {
    fn sweep_autocast_bf16_enter(cuda: std::os::raw::c_int) -> std::os::raw::c_int;
    fn sweep_autocast_bf16_exit(cuda: std::os::raw::c_int, was: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// Restores autocast's previous state even if the region panics.
struct Region {
    cuda: std::os::raw::c_int,
    was: std::os::raw::c_int,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: plain calls into libtorch's thread-local autocast state; no pointers cross.
        let rc = unsafe { sweep_autocast_bf16_exit(self.cuda, self.was) };
        debug_assert_eq!(rc, 0, "leaving autocast failed");
    }
}

/// Runs `f` under `precision` for ops on `device`.
pub fn autocast<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    if precision == Precision::Fp32 {
        return f();
    }
    let cuda = device.is_cuda() as std::os::raw::c_int;
    // SAFETY: as above.
    let was = unsafe { sweep_autocast_bf16_enter(cuda) };
    assert!(was >= 0, "libtorch refused to enter a bf16 autocast region");
    let _region = Region { cuda, was };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn bf16_regions_compute_matmuls_in_bf16_and_end_cleanly() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Precision::Bf16, Device::Cpu, || a.matmul(&a));
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "autocast is off again after the region");
        let nested =
            autocast(Precision::Bf16, Device::Cpu, || autocast(Precision::Bf16, Device::Cpu, || a.matmul(&a)).kind());
        assert_eq!(nested, Kind::BFloat16);
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "nested regions restore the outer state");
        assert_eq!(autocast(Precision::Fp32, Device::Cpu, || a.matmul(&a)).kind(), Kind::Float);
    }

    #[test]
    fn auto_means_bf16_on_cuda_only() {
        assert_eq!(Precision::parse("auto", Device::Cuda(0)).unwrap(), Precision::Bf16);
        assert_eq!(Precision::parse("auto", Device::Cpu).unwrap(), Precision::Fp32);
        assert_eq!(Precision::parse("bf16", Device::Cpu).unwrap(), Precision::Bf16);
        assert!(Precision::parse("fp16", Device::Cpu).unwrap_err().contains("params.precision"));
    }
}
