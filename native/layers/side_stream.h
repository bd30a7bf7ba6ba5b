// Two independent parts of a backward on two CUDA streams at once.
//
// cuDNN's weight gradient of a 3×3 convolution at D's and G's 512-channel layers is 4 × 36 = 144
// output tiles of 128×128, each summing over the whole batch: on an H100's 132 SMs its persistent
// kernel runs 12 tiles in a second round while 120 SMs idle, and it took twice the forward's time
// for the same multiply-adds (32² fading step: 2.73 against 1.43 ms for the largest layer; the
// 4×4 fused-scale layers, 256 tiles, ran at the forward's rate). The input gradient (or, in the
// gradient penalty's double backward, a forward convolution) of the same layer does not depend on
// it and can run beside it. Measured on an H100 (paper channels, graphs captured with and without,
// replays interleaved, best of 3): steps 0.5–1.4 % faster at 16²–64². Less than the idle second
// round promised: in the trace the two kernels overlap for ~1.4 ms a 32² step and slow each other
// (weight gradients 13.6 → 14.5 ms a step).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#ifdef PROGAN_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace progan {

// Runs `side` on a second stream of the GPU while `main` runs on the current stream, and returns
// side's results, usable on the current stream once this returns (the current stream waits for
// the second). `sideInputs` are the tensors `side` reads: the caching allocator is told that the
// second stream uses them, and that the current one uses side's results, so neither is reused
// early. Where the first input is not on a GPU (or in a CPU build), side then main run in turn.
// Both streams' work is ordered after what the current stream has queued, so this may be recorded
// into a CUDA graph (a fork and a join).
std::vector<at::Tensor> alongside(const std::vector<at::Tensor>& sideInputs, const std::function<std::vector<at::Tensor>()>& side,
                                  const std::function<void()>& main);

#ifdef PROGAN_WITH_CUDA
// `waiter` runs what is queued on it from now on only after what is queued on `before` so far (a
// fork or a join when recorded into a CUDA graph).
void orderStreams(const c10::cuda::CUDAStream& before, const c10::cuda::CUDAStream& waiter);

// The streams this addon keeps per device, each taken once from ATen's pool, no two alike.
enum class DedicatedStream { Step, Second };  // a training step's (train/step_graph.h), alongside's
c10::cuda::CUDAStream dedicatedStream(c10::DeviceIndex device, DedicatedStream which);
#endif

}  // namespace progan
