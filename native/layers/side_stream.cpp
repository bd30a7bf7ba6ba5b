#include "layers/side_stream.h"

#ifdef PROGAN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <map>
#include <mutex>
#endif

namespace progan {

#ifdef PROGAN_WITH_CUDA
namespace {

using c10::cuda::CUDAStream;

// One second stream per device, other than `current` (the pool hands streams out in turn, and the
// training step itself runs on one of them).
CUDAStream secondStream(const CUDAStream& current) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, CUDAStream> streams;
  std::lock_guard<std::mutex> lock(mutex);
  const auto device = current.device_index();
  auto it = streams.find(device);
  if (it == streams.end() || it->second == current) {
    auto s = c10::cuda::getStreamFromPool(false, device);
    while (s == current) s = c10::cuda::getStreamFromPool(false, device);
    it = streams.insert_or_assign(device, s).first;
  }
  return it->second;
}

void usedOn(const at::Tensor& t, const CUDAStream& stream) {
  if (t.defined() && t.is_cuda() && t.storage().data_ptr().get() != nullptr)
    c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream);
}

}  // namespace

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
    const auto second = secondStream(current);
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
