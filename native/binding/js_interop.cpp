#include "binding/js_interop.h"

#include <ATen/ATen.h>

#include <cstring>

namespace progan::binding {

namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  napi_typedarray_type array;
};

constexpr DtypeInfo kDtypes[] = {
    {"float32", at::kFloat, napi_float32_array}, {"float64", at::kDouble, napi_float64_array},
    {"uint8", at::kByte, napi_uint8_array},      {"int32", at::kInt, napi_int32_array},
    {"int64", at::kLong, napi_bigint64_array},
};

const DtypeInfo& dtypeByName(const std::string& name, const std::string& arg) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d;
  throw std::invalid_argument("Expected dtype float32, float64, uint8, int32 or int64 for " + arg +
                              " but received " + name);
}

const DtypeInfo& dtypeByType(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return d;
  throw std::invalid_argument(std::string("Tensors of dtype ") + c10::toString(t) + " cannot cross to JavaScript");
}

}  // namespace

at::Tensor toTorch(const Napi::Value& value, const std::string& name) {
  if (!value.IsObject()) throw std::invalid_argument("Expected a Tensor for " + name);
  auto o = value.As<Napi::Object>();
  const auto dtype = o.Get("dtype");
  const auto& info = dtypeByName(dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : "?", name);
  const auto shapeValue = o.Get("shape");
  if (!shapeValue.IsArray()) throw std::invalid_argument("Expected an array shape for " + name);
  auto shapeArray = shapeValue.As<Napi::Array>();
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (uint32_t i = 0; i < shapeArray.Length(); ++i) {
    const double d = shapeArray.Get(i).As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d))
      throw std::invalid_argument("Expected non-negative integer dimensions for " + name);
    shape.push_back(int64_t(d));
    count *= int64_t(d);
  }
  const auto dataValue = o.Get("data");
  if (!dataValue.IsTypedArray()) throw std::invalid_argument("Expected a typed array as data of " + name);
  auto data = dataValue.As<Napi::TypedArray>();
  if (data.TypedArrayType() != info.array)
    throw std::invalid_argument("The data of " + name + " does not match its dtype " + info.name);
  if (int64_t(data.ElementLength()) != count)
    throw std::invalid_argument("Expected " + std::to_string(count) + " elements for " + name + " (shape " +
                                c10::str(at::IntArrayRef(shape)) + ") but received " +
                                std::to_string(data.ElementLength()));
  auto tensor = at::empty(shape, at::TensorOptions().dtype(info.type));
  const auto* src = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  if (count > 0) std::memcpy(tensor.data_ptr(), src, data.ByteLength());
  return tensor;
}

at::Tensor optionalTensor(const Napi::Value& value, const std::string& name) {
  if (value.IsUndefined() || value.IsNull()) return {};
  return toTorch(value, name);
}

Napi::Object toJs(Napi::Env env, const at::Tensor& tensor) {
  const auto contiguous = tensor.detach().to(at::kCPU).contiguous();
  const auto& info = dtypeByType(contiguous.scalar_type());
  const size_t bytes = contiguous.numel() * contiguous.element_size();
  auto buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buffer.Data(), contiguous.data_ptr(), bytes);
  auto shape = Napi::Array::New(env, contiguous.dim());
  for (int64_t i = 0; i < contiguous.dim(); ++i) shape.Set(uint32_t(i), Napi::Number::New(env, double(contiguous.size(i))));
  auto out = Napi::Object::New(env);
  out.Set("dtype", info.name);
  out.Set("shape", shape);
  napi_value typed;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, info.array, size_t(contiguous.numel()), buffer, 0, &typed),
                       Napi::Object());
  out.Set("data", Napi::Value(env, typed));
  return out;
}

Napi::Array namedToJs(Napi::Env env, const NamedTensors& named) {
  auto out = Napi::Array::New(env, named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, named[i].first);
    pair.Set(1u, toJs(env, named[i].second));
    out.Set(uint32_t(i), pair);
  }
  return out;
}

NamedTensors namedFromJs(const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw std::invalid_argument("Expected an array of [name, Tensor] pairs for " + what);
  auto arr = value.As<Napi::Array>();
  NamedTensors out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const auto item = arr.Get(i);
    if (!item.IsArray()) throw std::invalid_argument("Expected [name, Tensor] pairs for " + what);
    auto pair = item.As<Napi::Array>();
    const auto name = pair.Get(0u).ToString().Utf8Value();
    out.emplace_back(name, toTorch(pair.Get(1u), name));
  }
  return out;
}

double numberField(const Napi::Object& o, const char* key) {
  const auto v = o.Get(key);
  if (!v.IsNumber()) throw std::invalid_argument(std::string("Expected a number for ") + key);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integerField(const Napi::Object& o, const char* key) {
  const double d = numberField(o, key);
  if (d != std::floor(d)) throw std::invalid_argument(std::string("Expected an integer for ") + key);
  return int64_t(d);
}

bool boolField(const Napi::Object& o, const char* key) {
  const auto v = o.Get(key);
  if (!v.IsBoolean()) throw std::invalid_argument(std::string("Expected a boolean for ") + key);
  return v.As<Napi::Boolean>().Value();
}

std::string stringField(const Napi::Object& o, const char* key) {
  const auto v = o.Get(key);
  if (!v.IsString()) throw std::invalid_argument(std::string("Expected a string for ") + key);
  return v.As<Napi::String>().Utf8Value();
}

NetworkConfig networkConfigFrom(const Napi::Object& o) {
  NetworkConfig c;
  c.resolution = integerField(o, "resolution");
  c.latentSize = integerField(o, "latentSize");
  c.fmapBase = integerField(o, "fmapBase");
  c.fmapDecay = numberField(o, "fmapDecay");
  c.fmapMax = integerField(o, "fmapMax");
  c.channels = integerField(o, "channels");
  c.labelSize = integerField(o, "labelSize");
  c.tanhOutput = stringField(o, "outputActivation") == "tanh";
  c.minibatchStddevGroup = integerField(o, "minibatchStddevGroup");
  c.normalizeLatents = boolField(o, "normalizeLatents");
  c.pixelNormEpsilon = numberField(o, "pixelNormEpsilon");
  const auto fused = o.Get("fusedScale");
  c.fusedScale = fused.IsBoolean() ? (fused.As<Napi::Boolean>().Value() ? 1 : 0) : 2;
  const auto winograd = o.Get("winograd");
  c.winograd = winograd.IsBoolean() ? (winograd.As<Napi::Boolean>().Value() ? 1 : 0) : 2;
  // Absent in checkpoints written before the option existed: auto.
  const auto channelsLast = o.Get("channelsLast");
  c.channelsLast = channelsLast.IsBoolean() ? (channelsLast.As<Napi::Boolean>().Value() ? 1 : 0) : 2;
  // Absent in checkpoints written before the option existed: auto.
  const auto weightGradient = o.Get("weightGradient");
  const auto weightGradientName = weightGradient.IsString() ? weightGradient.As<Napi::String>().Utf8Value() : std::string("auto");
  c.weightGradient = weightGradientName == "library" ? 0 : weightGradientName == "gemm" ? 1 : 2;
  c.referenceOps = o.Get("impl").IsString() && o.Get("impl").As<Napi::String>().Utf8Value() == "reference";
  // Absent in checkpoints written before the option existed: float32.
  c.bfloat16 = o.Get("precision").IsString() && o.Get("precision").As<Napi::String>().Utf8Value() == "bfloat16";
  return c;
}

}  // namespace progan::binding
