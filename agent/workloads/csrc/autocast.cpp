// bfloat16 autocast through libtorch's current API. tch's `autocast` calls the deprecated
// `at::autocast::set_enabled`, which warns on every call and only knows CUDA's float16.
#include <ATen/autocast_mode.h>

static at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

extern "C" {

// Turns bf16 autocast on for CUDA (cuda != 0) or the CPU; returns whether it was on before,
// or -1 if libtorch refused.
int sweep_autocast_bf16_enter(int cuda) {
  try {
    auto dt = device_type(cuda);
    bool was = at::autocast::is_autocast_enabled(dt);
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::set_autocast_dtype(dt, at::kBFloat16);
    at::autocast::increment_nesting();
    return was ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Restores the state `enter` returned and frees autocast's weight cache when leaving the
// outermost region; returns 0, or -1 if libtorch refused.
int sweep_autocast_bf16_exit(int cuda, int was) {
  try {
    auto dt = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dt, was == 1);
    return 0;
  } catch (...) {
    return -1;
  }
}
}
