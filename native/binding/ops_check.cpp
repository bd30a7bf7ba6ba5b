// opDerivatives: one fused op (or its reference) with its first and second derivatives, for the
// parity tests and benchmarks of native/ops and the fused-scale convolutions. Given inputs x_i,
// an output gradient u and directions v_i it returns y = f(x), g_i = ∂⟨y, u⟩/∂x_i, and the
// derivatives of Σ⟨g_i, v_i⟩ with respect to u and to every x_i (the double backward the
// gradient penalty takes through D).
#include <napi.h>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "binding/js_interop.h"
#include "layers/convolution.h"
#include "layers/winograd.h"
#include "layers/equalized.h"
#include "layers/leaky_relu.h"
#include "layers/matrix_product.h"
#include "layers/minibatch_stddev.h"
#include "ops/bias_leaky_relu.h"
#include "ops/fade_in.h"
#include "ops/gradient_penalty.h"
#include "ops/pixel_norm.h"

namespace progan::binding {

namespace {

at::Tensor applyOp(const std::string& op, const std::string& impl, const std::vector<at::Tensor>& x,
                   const Napi::Object& spec) {
  const auto ops = impl == "reference" ? OpsImpl::Reference : OpsImpl::Auto;
  const bool fused = impl != "reference";
  auto need = [&](size_t n) {
    TORCH_CHECK(x.size() == n, op, " takes ", n, " inputs but received ", x.size());
  };
  // `alphaOnDevice` (ours, not the reference): α as a 0-dim tensor beside the inputs, as a step
  // recorded as a CUDA graph passes it, with a decoy host value: a blend that read the host value
  // (which a recorded step would freeze) would not match the reference's plain α.
  const auto alpha = [&](const at::Tensor& like) {
    const double a = numberField(spec, "alpha");
    if (impl == "reference" || !spec.Get("alphaOnDevice").ToBoolean().Value()) return Alpha(a);
    return Alpha(a >= 0.5 ? a - 0.5 : a + 0.5, at::scalar_tensor(a, like.options()));
  };
  if (op == "upsampleLerp") {
    need(2);
    return upsampleLerp(x[0], x[1], alpha(x[1]), ops);
  }
  if (op == "fadeReals") {
    need(1);
    return fadeReals(x[0], alpha(x[0]), ops);
  }
  if (op == "penalty") {
    need(1);
    return penaltyFromGradients(x[0], numberField(spec, "lambda"), numberField(spec, "gamma"), numberField(spec, "k"), ops);
  }
  // `channelsLast` (ours, not the reference): every convolution channels-last.
  const bool channelsLast = fused && spec.Get("channelsLast").ToBoolean().Value();
  // `weightScale`: ours scales the weight inside the pass that lays out the conv's kernel (an
  // equalized layer's runtime scale); the reference multiplies it first with ATen.
  const double weightScale = spec.Has("weightScale") ? numberField(spec, "weightScale") : 1.0;
  if (op == "upsampleConv") {
    need(3);
    if (!fused) return upsampleConv3x3(x[0], x[1] * weightScale, x[2], false);
    return upsampleConv3x3(x[0], x[1], x[2], true, weightScale, ConvChoices{WinogradMode::Off, channelsLast});
  }
  if (op == "convDownsample") {
    need(3);
    if (!fused) return conv3x3Downsample(x[0], x[1] * weightScale, x[2], false);
    return conv3x3Downsample(x[0], x[1], x[2], true, weightScale, ConvChoices{WinogradMode::Off, channelsLast});
  }
  if (op == "convolution") {
    need(3);
    const int64_t stride = int64_t(numberField(spec, "stride")), padding = int64_t(numberField(spec, "padding"));
    const bool transposed = spec.Get("transposed").ToBoolean().Value();
    // The reference is ATen's convolution with ATen's own derivatives.
    if (impl == "reference")
      return at::convolution(x[0], x[1] * weightScale, x[2], {stride, stride}, {padding, padding}, {1, 1}, transposed, {0, 0}, 1);
    ConvGeometry g{{stride, stride}, {padding, padding}, {0, 0}, transposed};
    g.channelsLast = channelsLast;
    g.pointwise = true;  // as a network's 1×1 layers take it
    // `gemmWeightGrad`: a 3×3 layer's weight gradient as matrix products (layers/gemm_weight_grad.h).
    g.gemmWeightGrad = spec.Has("gemmWeightGrad") && spec.Get("gemmWeightGrad").ToBoolean().Value();
    // `channelsLastInput`: the input arrives channels-last, as a channels-last network's activations
    // do (its images arrive NCHW).
    const bool inputChannelsLast = channelsLast && spec.Has("channelsLastInput") && spec.Get("channelsLastInput").ToBoolean().Value();
    return convolution(inputChannelsLast ? x[0].contiguous(at::MemoryFormat::ChannelsLast) : x[0], scaledKernel(x[1], weightScale, g), x[2], g);
  }
  if (op == "winogradConvolution") {
    need(3);
    if (impl == "reference") return at::convolution(x[0], x[1], x[2], {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1);
    TORCH_CHECK(winogradFits(x[0], x[1]), "winogradConvolution: these tensors would not take the Winograd kernels");
    ConvGeometry g{{1, 1}, {1, 1}};
    g.winograd = true;
    // A channels-last input (a channels-last network's activations) gets a channels-last result.
    return convolution(channelsLast ? x[0].contiguous(at::MemoryFormat::ChannelsLast) : x[0], x[1], x[2], g);
  }
  if (op == "leakyRelu") {
    need(1);
    // The reference is ATen's leaky_relu, whose second derivative in x is a materialised zero.
    return impl == "reference" ? at::leaky_relu(x[0], 0.2) : lrelu(x[0]);
  }
  if (op == "biasLeakyRelu") {
    need(2);
    // The reference: ATen's mul, add and leaky ReLU (whose second derivative in y is a materialised zero).
    const double scale = spec.Has("scale") ? numberField(spec, "scale") : 1.0;
    if (impl == "reference") return at::leaky_relu(x[0] * scale + (x[0].dim() == 4 ? x[1].view({1, -1, 1, 1}) : x[1].view({1, -1})), 0.2);
    return biasLeakyRelu(channelsLast ? x[0].contiguous(at::MemoryFormat::ChannelsLast) : x[0], x[1], ops, scale);
  }
  if (op == "pixelNorm") {
    need(1);
    const double epsilon = numberField(spec, "epsilon");
    if (impl == "reference") return ops_reference::pixelNorm(x[0], epsilon);
    return pixelNorm(channelsLast ? x[0].contiguous(at::MemoryFormat::ChannelsLast) : x[0], epsilon, ops);
  }
  if (op == "matrixProduct") {
    need(2);
    // `transposed`: the second factor is x1ᵀ, as a dense layer uses its [out, in] weight.
    const auto b = spec.Get("transposed").ToBoolean().Value() ? x[1].t() : x[1];
    return impl == "reference" ? at::mm(x[0], b) : matrixProduct(x[0], b);
  }
  if (op == "minibatchStddev") {
    need(1);
    // `atenKernels`: the closed forms as ATen ops (the path other devices take) instead of the CPU loops.
    const bool aten = spec.Has("atenKernels") && spec.Get("atenKernels").ToBoolean().Value();
    return minibatchStddev(x[0], int64_t(numberField(spec, "group")), int64_t(numberField(spec, "parts")), ops,
                           aten ? StddevKernels::AtenOps : StddevKernels::ForDevice);
  }
  throw std::invalid_argument("Unknown op '" + op +
                              "' (upsampleLerp, fadeReals, penalty, upsampleConv, convDownsample, convolution, winogradConvolution, leakyRelu, "
                              "biasLeakyRelu, pixelNorm, matrixProduct, minibatchStddev)");
}

std::vector<at::Tensor> tensorList(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) throw std::invalid_argument("Expected an array of Tensors for " + name);
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(toTorch(arr.Get(i), name + "[" + std::to_string(i) + "]"));
  return out;
}

Napi::Array tensorsToJs(Napi::Env env, const std::vector<at::Tensor>& ts, const std::vector<at::Tensor>& like) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); ++i) arr.Set(uint32_t(i), toJs(env, ts[i].defined() ? ts[i] : at::zeros_like(like[i])));
  return arr;
}

}  // namespace

Napi::Value OpDerivatives(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const auto spec = info[0].As<Napi::Object>();
    const auto op = stringField(spec, "op");
    const auto impl = stringField(spec, "impl");
    // `device: 'cuda'`: every tensor moves to the GPU first (the CUDA kernels' parity, scripts/gpu/parity.ts).
    const auto device = spec.Has("device") ? stringField(spec, "device") : std::string("cpu");
    TORCH_CHECK(device == "cpu" || device == "cuda", "Expected 'cpu' or 'cuda' for device but received '", device, "'");
    const auto onDevice = [&](std::vector<at::Tensor> ts) {
      for (auto& t : ts) t = t.to(at::Device(device));
      return ts;
    };
    auto xs = onDevice(tensorList(spec.Get("inputs"), "inputs"));
    const auto vs = onDevice(tensorList(spec.Get("directions"), "directions"));
    TORCH_CHECK(vs.size() == xs.size(), "Expected one direction per input");
    for (auto& x : xs) x.requires_grad_(true);
    const auto y = applyOp(op, impl, xs, spec);
    auto u = toTorch(spec.Get("gradOutput"), "gradOutput").to(at::Device(device));
    TORCH_CHECK(u.sizes() == y.sizes(), "Expected gradOutput of shape ", y.sizes(), " but received ", u.sizes());
    // First derivatives twice: without a graph (the last backward of a step, which may take
    // shortcuts) and with one (the penalty's, differentiated again below).
    const auto gPlain = torch::autograd::grad({y}, xs, {u}, /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true);
    u.requires_grad_(true);
    const auto g = torch::autograd::grad({y}, xs, {u}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
    auto s = at::zeros({}, y.options());
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i].defined()) s = s + (g[i] * vs[i]).sum();
    std::vector<at::Tensor> wrt{u};
    wrt.insert(wrt.end(), xs.begin(), xs.end());
    std::vector<at::Tensor> second(wrt.size());
    if (s.requires_grad()) second = torch::autograd::grad({s}, wrt, {}, false, false, /*allow_unused=*/true);
    auto env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("output", toJs(env, y));
    // Whether y is laid out channels-last in memory (toJs copies it into NCHW order either way).
    out.Set("outputChannelsLast", Napi::Boolean::New(env, y.dim() == 4 && y.is_contiguous(at::MemoryFormat::ChannelsLast) && !y.is_contiguous()));
    out.Set("gradients", tensorsToJs(env, g, xs));
    out.Set("gradientsNoGraph", tensorsToJs(env, gPlain, xs));
    out.Set("gradOutputSecond", toJs(env, second[0].defined() ? second[0] : at::zeros_like(u)));
    out.Set("inputsSecond", tensorsToJs(env, std::vector<at::Tensor>(second.begin() + 1, second.end()), xs));
    return out;
  });
}

}  // namespace progan::binding
