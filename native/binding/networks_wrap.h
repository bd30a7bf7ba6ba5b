#pragma once
#include <napi.h>

#include <functional>

#include "binding/js_interop.h"
#include "networks/discriminator.h"
#include "networks/generator.h"
#include "networks/named_parameters.h"

namespace progan::binding {

class NetworksWrap : public Napi::ObjectWrap<NetworksWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NetworksWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value SetParameters(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value SetDtype(const Napi::CallbackInfo& info);

  torch::nn::Module& module(const Napi::Value& which);
  // The pass that info (which, input, resolution, alpha[, labels]) asks for, read from JS here and
  // run later, on the compute thread, with no JS access.
  std::function<at::Tensor(const at::Tensor&)> pass(const Napi::CallbackInfo& info);

  Generator generator_{nullptr};
  Discriminator discriminator_{nullptr};
};

}  // namespace progan::binding
