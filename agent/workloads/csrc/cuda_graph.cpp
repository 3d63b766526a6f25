// CUDA graphs through libtorch's at::cuda::CUDAGraph, which tch does not wrap: a training step is
// captured once on a side stream and then replayed, one launch for the step's hundreds of kernels.
// Every entry point catches libtorch's exceptions and hands back the message instead.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <cstring>
#include <exception>
#include <memory>

namespace {

struct Graph {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream capture;
  c10::cuda::CUDAStream previous;

  explicit Graph(c10::DeviceIndex device)
      : capture(c10::cuda::getStreamFromPool(false, device)),
        previous(c10::cuda::getCurrentCUDAStream(device)) {}
};

void set_error(char* err, size_t len, const char* what) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

}  // namespace

extern "C" {

// CUDA devices libtorch sees (0 without a driver).
int sweep_cuda_device_count() { return static_cast<int>(c10::cuda::device_count()); }

// Begins capturing everything queued on `device` from now on, on a side stream, once the work
// queued before has finished (as torch.cuda.graph does). Returns the graph, or null with the reason
// in `err`. (Only c10_cuda and torch_cuda calls here: the CUDA runtime is theirs to load.)
void* sweep_graph_capture_begin(int device, char* err, size_t err_len) {
  try {
    if (device < 0 || device >= static_cast<int>(c10::cuda::device_count())) {
      set_error(err, err_len, "no such CUDA device");
      return nullptr;
    }
    c10::cuda::device_synchronize();
    auto graph = std::make_unique<Graph>(static_cast<c10::DeviceIndex>(device));
    c10::cuda::setCurrentCUDAStream(graph->capture);
    try {
      graph->graph.capture_begin();
    } catch (...) {
      c10::cuda::setCurrentCUDAStream(graph->previous);
      throw;
    }
    return graph.release();
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return nullptr;
  }
}

// Ends the capture and puts the previous stream back (capturing runs nothing, so there is no
// work to wait for).
// Returns 0, or -1 with the reason in `err` (the graph is then unusable; free it).
int sweep_graph_capture_end(void* handle, char* err, size_t err_len) {
  auto* graph = static_cast<Graph*>(handle);
  try {
    graph->graph.capture_end();
    c10::cuda::setCurrentCUDAStream(graph->previous);
    return 0;
  } catch (const std::exception& e) {
    c10::cuda::setCurrentCUDAStream(graph->previous);
    set_error(err, err_len, e.what());
    return -1;
  }
}

// Replays the captured work on the current stream. Returns 0, or -1 with the reason in `err`.
int sweep_graph_replay(void* handle, char* err, size_t err_len) {
  try {
    static_cast<Graph*>(handle)->graph.replay();
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

void sweep_graph_free(void* handle) { delete static_cast<Graph*>(handle); }
}
