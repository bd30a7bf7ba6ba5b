// JS handle on a generator/discriminator pair built from one NetworkConfig.
#include "binding/networks_wrap.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include "networks/named_parameters.h"
#include "train/compute_thread.h"

namespace progan::binding {

Napi::Function NetworksWrap::Define(Napi::Env env) {
  return DefineClass(env, "Networks",
                     {
                         InstanceMethod("forward", &NetworksWrap::Forward),
                         InstanceMethod("forwardBackward", &NetworksWrap::ForwardBackward),
                         InstanceMethod("parameters", &NetworksWrap::Parameters),
                         InstanceMethod("setParameters", &NetworksWrap::SetParameters),
                         InstanceMethod("parameterCount", &NetworksWrap::ParameterCount),
                         InstanceMethod("setDtype", &NetworksWrap::SetDtype),
                     });
}

NetworksWrap::NetworksWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetworksWrap>(info) {
  guarded(info, [&] {
    const auto config = networkConfigFrom(info[0].As<Napi::Object>());
    const auto seed = uint64_t(info[1].As<Napi::Number>().Int64Value());
    runOnComputeThread([&] {
      torch::manual_seed(seed);
      generator_ = Generator(config);
      discriminator_ = Discriminator(config);
    });
    return info.Env().Undefined();
  });
}

torch::nn::Module& NetworksWrap::module(const Napi::Value& which) {
  const auto name = which.IsString() ? which.As<Napi::String>().Utf8Value() : "";
  if (name == "generator") return *generator_;
  if (name == "discriminator") return *discriminator_;
  throw std::invalid_argument("Expected 'generator' or 'discriminator' but received '" + name + "'");
}

std::function<at::Tensor(const at::Tensor&)> NetworksWrap::pass(const Napi::CallbackInfo& info) {
  module(info[0]);  // validates the name
  const bool generator = info[0].As<Napi::String>().Utf8Value() == "generator";
  const int64_t resolution = info[2].As<Napi::Number>().Int64Value();
  const double alpha = info[3].As<Napi::Number>().DoubleValue();
  const auto type = generator_->parameters().front().scalar_type();
  const auto labels = generator ? optionalTensor(info[4], "labels") : at::Tensor();
  return [=, this](const at::Tensor& input) {
    TORCH_CHECK(input.scalar_type() == type, "Expected a ", c10::toString(type), " input but received ",
                c10::toString(input.scalar_type()), "; convert it or call setDtype()");
    if (generator) return generator_->forward(input, labels.defined() ? labels.to(type) : labels, resolution, alpha);
    return discriminator_->forward(input, resolution, alpha);
  };
}

Napi::Value NetworksWrap::Forward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto run = pass(info);
    const auto input = toTorch(info[1], "input");
    at::Tensor output;
    runOnComputeThread([&] {
      torch::NoGradGuard noGrad;
      output = run(input);
    });
    return toJs(info.Env(), output);
  });
}

Napi::Value NetworksWrap::ForwardBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto& net = module(info[0]);
    const auto run = pass(info);
    auto input = toTorch(info[1], "input").requires_grad_(true);
    const auto gradOutput = toTorch(info[5], "gradOutput");
    at::Tensor output;
    NamedTensors grads;
    runOnComputeThread([&] {
      net.zero_grad();
      output = run(input);
      TORCH_CHECK(gradOutput.sizes() == output.sizes(), "Expected gradOutput of shape ", output.sizes(),
                  " but received ", gradOutput.sizes());
      output.backward(gradOutput.to(output.scalar_type()));
      for (const auto& p : net.named_parameters())
        grads.emplace_back(p.key(), p.value().grad().defined() ? p.value().grad() : at::zeros_like(p.value()));
    });
    auto out = Napi::Object::New(info.Env());
    out.Set("output", toJs(info.Env(), output));
    out.Set("inputGrad", toJs(info.Env(), input.grad()));
    out.Set("gradients", namedToJs(info.Env(), grads));
    net.zero_grad();
    return out;
  });
}

Napi::Value NetworksWrap::Parameters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return namedToJs(info.Env(), namedParameters(module(info[0]))); });
}

Napi::Value NetworksWrap::SetParameters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto& net = module(info[0]);
    assignParameters(net, namedFromJs(info[1], "parameters"));
    return info.Env().Undefined();
  });
}

Napi::Value NetworksWrap::ParameterCount(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), double(parameterCount(module(info[0]))));
  });
}

Napi::Value NetworksWrap::SetDtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto name = info[0].As<Napi::String>().Utf8Value();
    TORCH_CHECK(name == "float32" || name == "float64", "Expected dtype float32 or float64 but received ", name);
    const auto type = name == "float64" ? at::kDouble : at::kFloat;
    generator_->to(type);
    discriminator_->to(type);
    return info.Env().Undefined();
  });
}

}  // namespace progan::binding
