// Module entry: the native API that lib/native.ts loads. Every export converts C++ exceptions
// to JS Errors (binding/js_interop.h).
#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Context.h>

#ifdef PROGAN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "binding/js_interop.h"
#include "binding/networks_wrap.h"
#include "binding/trainer_wrap.h"
#include "train/compute_thread.h"
#include "train/host_allocator.h"
#include "train/schedule.h"

namespace progan::binding {

Napi::Value OpDerivatives(const Napi::CallbackInfo& info);  // ops_check.cpp

namespace {

// Read by the loader (lib/native.ts) from the file itself, before loading, to refuse a libtorch
// whose version differs from the one this binary was compiled against (C++ ABI).
[[gnu::used]] const char kBuildTag[] = "progan-torch-version:" PROGAN_TORCH_VERSION ";";

Napi::Value Versions(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("torch", PROGAN_TORCH_VERSION);
  // The compute thread's default intra-op count (this calling thread is kept at 1).
  out.Set("threads", Napi::Number::New(info.Env(), defaultComputeThreads()));
  out.Set("parallel", at::get_parallel_info());
#ifdef PROGAN_WITH_CUDA
  out.Set("build", "cuda");
#else
  out.Set("build", "cpu");
#endif
  return out;
}

Napi::Value Randn(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto shapeArray = info[0].As<Napi::Array>();
    std::vector<int64_t> shape;
    for (uint32_t i = 0; i < shapeArray.Length(); ++i) shape.push_back(shapeArray.Get(i).As<Napi::Number>().Int64Value());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(info[1].As<Napi::Number>().Int64Value()));
    const auto dtype = info[2].IsString() && info[2].As<Napi::String>().Utf8Value() == "float64" ? at::kDouble : at::kFloat;
    return toJs(info.Env(), at::randn(shape, gen, at::TensorOptions().dtype(dtype)));
  });
}

Napi::Value ScheduleAt(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto config = scheduleConfigFrom(info[0].As<Napi::Object>());
    return schedulePointToJs(info.Env(), scheduleAt(config, info[1].As<Napi::Number>().DoubleValue()));
  });
}

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::hasCUDA() && at::globalContext().hasCUDA());
}

// The CUDA caching allocator's figures for the current device, in bytes: what tensors hold now and at
// their peak, and what the allocator has reserved from the driver. `true` first resets the peaks.
Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
#ifdef PROGAN_WITH_CUDA
    TORCH_CHECK(at::hasCUDA() && at::globalContext().hasCUDA(), "cudaMemory: no GPU is visible to this process");
    const auto device = c10::cuda::current_device();
    namespace alloc = c10::cuda::CUDACachingAllocator;
    if (info.Length() > 0 && info[0].ToBoolean().Value()) alloc::resetPeakStats(device);
    const auto stats = alloc::getDeviceStats(device);
    // Index 0 is StatType::AGGREGATE (all pools); its namespace moved between torch versions.
    constexpr size_t aggregate = 0;
    auto out = Napi::Object::New(info.Env());
    const auto set = [&](const char* key, int64_t bytes) { out.Set(key, Napi::Number::New(info.Env(), double(bytes))); };
    set("allocatedBytes", stats.allocated_bytes[aggregate].current);
    set("peakAllocatedBytes", stats.allocated_bytes[aggregate].peak);
    set("reservedBytes", stats.reserved_bytes[aggregate].current);
    set("peakReservedBytes", stats.reserved_bytes[aggregate].peak);
    return out;
#else
    TORCH_CHECK(false, "cudaMemory: this is the CPU build of progan; build the CUDA variant with `npm run build:cuda`");
    return info.Env().Undefined();
#endif
  });
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 0) throw std::invalid_argument("Expected 0 (one thread per core) or more threads but received " + std::to_string(n));
    setComputeThreads(n);
    return info.Env().Undefined();
  });
}

// The training host allocator's state (train/host_allocator.h); a number argument first sets its cap.
Napi::Value HostCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (info.Length() > 0 && info[0].IsNumber()) {
      const double cap = info[0].As<Napi::Number>().DoubleValue();
      if (!(cap >= 0)) throw std::invalid_argument("Expected a cap of 0 or more bytes for the host cache");
      setHostCacheCap(size_t(cap));
    }
    const auto s = hostCacheStats();
    auto out = Napi::Object::New(info.Env());
    out.Set("installed", s.installed);
    out.Set("idleBytes", Napi::Number::New(info.Env(), double(s.idleBytes)));
    out.Set("capBytes", Napi::Number::New(info.Env(), double(s.capBytes)));
    return out;
  });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // NNPACK prints a warning on some CPUs and is never faster than oneDNN for these shapes.
  at::globalContext().setUserEnabledNNPACK(false);
  // Multi-threaded work runs on the compute thread; this (JS) thread must not open an OpenMP team.
  keepCallerSingleThreaded();
  exports.Set("versions", Napi::Function::New(env, Versions));
  exports.Set("randn", Napi::Function::New(env, Randn));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("cudaMemory", Napi::Function::New(env, CudaMemory));
  exports.Set("opDerivatives", Napi::Function::New(env, OpDerivatives));
  exports.Set("scheduleAt", Napi::Function::New(env, ScheduleAt));
  exports.Set("hostCache", Napi::Function::New(env, HostCache));
  exports.Set("Networks", NetworksWrap::Define(env));
  exports.Set("Trainer", TrainerWrap::Define(env));
  return exports;
}

}  // namespace progan::binding

static Napi::Object InitProgan(Napi::Env env, Napi::Object exports) { return progan::binding::Init(env, exports); }
NODE_API_MODULE(progan, InitProgan)
