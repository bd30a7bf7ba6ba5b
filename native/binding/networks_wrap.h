#pragma once
#include <napi.h>

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
  at::Tensor run(const Napi::CallbackInfo& info, const at::Tensor& input);

  Generator generator_{nullptr};
  Discriminator discriminator_{nullptr};
};

}  // namespace progan::binding
