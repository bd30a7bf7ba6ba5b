// Records training steps with the torch profiler (Kineto) into a Chrome/Perfetto trace: every ATen
// op the steps call, forward and autograd backward, with input shapes, and the GPU kernels on CUDA.
// It is how `trainPhase({ profile })` and the benchmark show where a step's time goes.
#pragma once
#include <functional>
#include <string>

namespace progan {

// Initializes the profiler's backend. Call it on the thread that loaded libtorch (the JS thread)
// before profileInto runs on a worker: Kineto registered itself there, and initializing it from
// another thread works but prints an error.
void prepareProfiling(bool cuda);

// Runs `work` with the profiler on for the calling thread (after prepareProfiling) and writes the trace to `path`, also when
// `work` throws (the trace then ends at the failure, and the exception goes on).
void profileInto(const std::string& path, bool cuda, const std::function<void()>& work);

}  // namespace progan
