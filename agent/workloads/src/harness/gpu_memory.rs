//! Peak GPU memory per epoch, from libtorch's caching allocator through the C++ shim
//! (`csrc/cuda_memory.cpp`): the figure PyTorch users know as `torch.cuda.max_memory_allocated`;
//! and the allocator's cache handed back, for other processes on the same GPU.

use std::os::raw::{c_int, c_longlong};
use tch::Device;

extern "C" {
    fn sweep_cuda_peak_allocated_bytes(device: c_int) -> c_longlong;
    fn sweep_cuda_reset_peak(device: c_int) -> c_int;
    fn sweep_cuda_empty_cache() -> c_int;
}

/// Starts measuring a new peak on `device`; nothing on the CPU.
pub fn reset_peak(device: Device) {
    if let Device::Cuda(i) = device {
        // SAFETY: a plain call into libtorch's allocator; errors come back as -1.
        unsafe { sweep_cuda_reset_peak(i as c_int) };
    }
}

/// Highest bytes allocated on `device` since the last reset; None on the CPU.
pub fn peak_bytes(device: Device) -> Option<f64> {
    match device {
        // SAFETY: as above.
        Device::Cuda(i) => {
            Some(unsafe { sweep_cuda_peak_allocated_bytes(i as c_int) }).filter(|b| *b >= 0).map(|b| b as f64)
        }
        _ => None,
    }
}

/// Hands the blocks libtorch's allocator keeps cached but unused back to the driver, so that other
/// processes on the GPU can have them (`torch.cuda.empty_cache`); nothing on the CPU.
pub fn release_cached(device: Device) {
    if device.is_cuda() {
        // SAFETY: as above.
        unsafe { sweep_cuda_empty_cache() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_gpu_memory_figure() {
        reset_peak(Device::Cpu);
        release_cached(Device::Cpu);
        assert_eq!(peak_bytes(Device::Cpu), None);
    }
}
