#include "train/step_graph.h"

#include <ATen/ATen.h>

#include "layers/side_stream.h"

#ifdef PROGAN_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace progan {

#ifdef PROGAN_WITH_CUDA

namespace {

using c10::cuda::CUDAStream;

c10::DeviceIndex deviceOf(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors)
    if (t.defined()) {
      TORCH_CHECK(t.is_cuda(), "A CUDA graph step needs its inputs on the GPU but one is on ", t.device());
      return t.device().index();
    }
  TORCH_CHECK(false, "A CUDA graph step needs at least one input");
}

// One side stream per device for every captured step and its warm-ups: a capture must not run on
// the legacy default stream, and the warm-ups must initialise what the capture will use (cuBLAS
// keeps a workspace per stream).
CUDAStream sideStream(c10::DeviceIndex device) { return dedicatedStream(device, DedicatedStream::Step); }

// After a failed capture: the stream leaves capture mode so that nothing later is recorded into a
// dead graph, and the non-sticky capture error is cleared.
void abandonCapture(const CUDAStream& stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &partial) == cudaSuccess && partial != nullptr) cudaGraphDestroy(partial);
  }
  (void)cudaGetLastError();
}

}  // namespace

struct StepGraph::Impl {
  explicit Impl(c10::DeviceIndex device) : stream(sideStream(device)) {}
  CUDAStream stream;
  at::cuda::CUDAGraph graph;
  std::vector<at::Tensor> inputs;
  at::Tensor output;
};

bool StepGraph::supported() { return true; }

at::Tensor StepGraph::runEager(const at::Device& device, const std::vector<at::Tensor>& inputs, const Body& body) {
  TORCH_CHECK(device.is_cuda(), "CUDA graph steps run on a GPU, not on ", device);
  const auto side = sideStream(device.index());
  const auto current = c10::cuda::getCurrentCUDAStream(device.index());
  orderStreams(current, side);
  at::Tensor out;
  {
    c10::cuda::CUDAStreamGuard guard(side);
    out = body(inputs);
  }
  orderStreams(side, current);
  return out;
}

StepGraph::StepGraph(const std::vector<at::Tensor>& inputs, const Body& body)
    : impl_(std::make_unique<Impl>(deviceOf(inputs))) {
  auto& s = *impl_;
  const auto current = c10::cuda::getCurrentCUDAStream(s.stream.device_index());
  orderStreams(current, s.stream);
  c10::cuda::CUDAStreamGuard guard(s.stream);
  // Outside the capture's memory pool: they outlive it and are written before every replay.
  for (const auto& t : inputs) s.inputs.push_back(t.defined() ? t.clone() : at::Tensor());
  try {
    s.graph.capture_begin();
    s.output = body(s.inputs);
    s.graph.capture_end();
  } catch (...) {
    abandonCapture(s.stream);
    throw;
  }
  orderStreams(s.stream, current);
}

StepGraph::~StepGraph() = default;

at::Tensor StepGraph::replay(const std::vector<at::Tensor>& inputs) {
  auto& s = *impl_;
  TORCH_CHECK(inputs.size() == s.inputs.size(), "A CUDA graph step was recorded with ", s.inputs.size(),
              " inputs but replayed with ", inputs.size());
  const auto current = c10::cuda::getCurrentCUDAStream(s.stream.device_index());
  orderStreams(current, s.stream);
  {
    c10::cuda::CUDAStreamGuard guard(s.stream);
    for (size_t i = 0; i < inputs.size(); ++i) {
      TORCH_CHECK(inputs[i].defined() == s.inputs[i].defined() &&
                      (!inputs[i].defined() || inputs[i].sizes() == s.inputs[i].sizes()),
                  "A CUDA graph step's input ", i, " changed shape since it was recorded");
      if (inputs[i].defined()) s.inputs[i].copy_(inputs[i], /*non_blocking=*/true);
    }
    s.graph.replay();
  }
  orderStreams(s.stream, current);
  return s.output;
}

#else  // a CPU build: no graphs

struct StepGraph::Impl {};

bool StepGraph::supported() { return false; }

at::Tensor StepGraph::runEager(const at::Device&, const std::vector<at::Tensor>& inputs, const Body& body) {
  return body(inputs);
}

StepGraph::StepGraph(const std::vector<at::Tensor>&, const Body&) {
  TORCH_CHECK(false, "CUDA graphs need the CUDA build of progan (npm run build:cuda)");
}

StepGraph::~StepGraph() = default;

at::Tensor StepGraph::replay(const std::vector<at::Tensor>&) {
  TORCH_CHECK(false, "CUDA graphs need the CUDA build of progan (npm run build:cuda)");
}

#endif

}  // namespace progan
