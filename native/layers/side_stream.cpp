#include "layers/side_stream.h"

#ifdef PROGAN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <map>
#include <mutex>
#include <utility>
#endif

namespace progan {

#ifdef PROGAN_WITH_CUDA
namespace {

using c10::cuda::CUDAStream;

void usedOn(const at::Tensor& t, const CUDAStream& stream) {
  if (t.defined() && t.is_cuda() && t.storage().data_ptr().get() != nullptr)
    c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream);
}

}  // namespace

CUDAStream dedicatedStream(c10::DeviceIndex device, DedicatedStream which) {
  static std::mutex mutex;
  static std::map<std::pair<c10::DeviceIndex, DedicatedStream>, CUDAStream> streams;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(device, which);
  if (auto it = streams.find(key); it != streams.end()) return it->second;
  // The pool hands its streams out in turn: skip any this device already uses.
  auto taken = [&](const CUDAStream& s) {
    for (const auto& [k, v] : streams)
      if (k.first == device && v == s) return true;
    return false;
  };
  auto s = c10::cuda::getStreamFromPool(false, device);
  while (taken(s)) s = c10::cuda::getStreamFromPool(false, device);
  return streams.emplace(key, s).first->second;
}

void orderStreams(const CUDAStream& before, const CUDAStream& waiter) {
  cudaEvent_t event;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(event, before.stream()));
  C10_CUDA_CHECK(cudaStreamWaitEvent(waiter.stream(), event, 0));
  C10_CUDA_CHECK(cudaEventDestroy(event));  // released once the recorded work completes
}
#endif

std::vector<at::Tensor> alongside(const std::vector<at::Tensor>& sideInputs, const std::function<std::vector<at::Tensor>()>& side,
                                  const std::function<void()>& main) {
#ifdef PROGAN_WITH_CUDA
  if (!sideInputs.empty() && sideInputs.front().is_cuda()) {
    const auto current = c10::cuda::getCurrentCUDAStream(sideInputs.front().device().index());
    const auto second = dedicatedStream(current.device_index(), DedicatedStream::Second);
    orderStreams(current, second);
    for (const auto& t : sideInputs) usedOn(t, second);
    std::vector<at::Tensor> results;
    {
      c10::cuda::CUDAStreamGuard guard(second);
      results = side();
    }
    main();
    orderStreams(second, current);
    for (const auto& t : results) usedOn(t, current);
    return results;
  }
#endif
  auto results = side();
  main();
  return results;
}

}  // namespace progan
