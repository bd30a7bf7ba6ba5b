// Crossing the boundary: JS tensors ({dtype, shape, data: TypedArray}) to torch and back, option
// objects to structs, and C++ exceptions to JS Errors. Every copy is explicit and exact.
#pragma once
#include <napi.h>
#include <ATen/core/Tensor.h>

#include <string>

#include "networks/named_parameters.h"
#include "networks/network_config.h"

namespace progan::binding {

at::Tensor toTorch(const Napi::Value& value, const std::string& name);
Napi::Object toJs(Napi::Env env, const at::Tensor& tensor);
// undefined or null → an undefined tensor
at::Tensor optionalTensor(const Napi::Value& value, const std::string& name);

// [[name, Tensor], ...] in both directions (parameters, gradients, checkpoint state).
Napi::Array namedToJs(Napi::Env env, const NamedTensors& named);
NamedTensors namedFromJs(const Napi::Value& value, const std::string& what);

NetworkConfig networkConfigFrom(const Napi::Object& options);

double numberField(const Napi::Object& o, const char* key);
int64_t integerField(const Napi::Object& o, const char* key);
bool boolField(const Napi::Object& o, const char* key);
std::string stringField(const Napi::Object& o, const char* key);

// Runs `body`, turning c10::Error and std::exception into a JS Error (a raw C++ exception from a
// synchronous binding would abort Node).
template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

}  // namespace progan::binding
