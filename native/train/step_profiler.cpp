#include "train/step_profiler.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <filesystem>

namespace progan {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

namespace {

void save(profiler::ProfilerResult& result, const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path();
  TORCH_CHECK(dir.empty() || std::filesystem::is_directory(dir), "Cannot write the profile to '", path,
              "': the folder '", dir.string(), "' does not exist");
  result.save(path);
  TORCH_CHECK(std::filesystem::exists(path), "The profiler did not write '", path, "': is the path writable?");
}

std::set<ActivityType> activitiesFor(bool cuda) {
  if (cuda) return {ActivityType::CPU, ActivityType::CUDA};
  return {ActivityType::CPU};
}

// Input shapes let a reader tell the 4² convolutions from the 64² ones.
ProfilerConfig config() { return ProfilerConfig(ProfilerState::KINETO, /*report_input_shapes=*/true); }

}  // namespace

void prepareProfiling(bool cuda) { profiler::prepareProfiler(config(), activitiesFor(cuda)); }

void profileInto(const std::string& path, bool cuda, const std::function<void()>& work) {
  TORCH_CHECK(!torch::profiler::impl::profilerEnabled(), "A profiler is already recording on this thread");
  profiler::enableProfiler(config(), activitiesFor(cuda));
  try {
    work();
  } catch (...) {
    auto result = profiler::disableProfiler();
    try {
      if (result) save(*result, path);
    } catch (...) {
      // The step's failure is the error worth reporting, not the trace's.
    }
    throw;
  }
  auto result = profiler::disableProfiler();
  TORCH_CHECK(result, "The profiler returned no result for '", path, "'");
  save(*result, path);
}

}  // namespace progan
