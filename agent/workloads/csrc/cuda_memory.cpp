// Peak GPU memory of this process, from libtorch's caching allocator (what
// torch.cuda.max_memory_allocated reports), and handing its unused blocks back to the driver
// (torch.cuda.empty_cache). tch exposes neither.
#include <c10/cuda/CUDACachingAllocator.h>

extern "C" {

// Highest bytes allocated on `device` since the last reset, or -1 if libtorch refused.
long long sweep_cuda_peak_allocated_bytes(int device) {
  try {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  } catch (...) {
    return -1;
  }
}

// Starts a new peak (one per epoch); returns 0, or -1 if libtorch refused.
int sweep_cuda_reset_peak(int device) {
  try {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Returns the allocator's cached, unused blocks to the driver; 0, or -1 if libtorch refused.
int sweep_cuda_empty_cache() {
  try {
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}
}
