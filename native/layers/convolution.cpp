#include "layers/convolution.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <vector>

#include "layers/gemm_weight_grad.h"
#include "layers/layout.h"
#include "layers/pointwise_convolution.h"
#include "layers/side_stream.h"
#include "layers/winograd.h"

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

bool takesWinograd(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w) {
  return g.winograd && !g.transposed && g.stride == std::vector<int64_t>{1, 1} &&
         g.padding == std::vector<int64_t>{1, 1} && winogradFits(x, w);
}

bool takesPointwise(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w) {
  return g.pointwise && !g.transposed && g.stride == std::vector<int64_t>{1, 1} &&
         g.padding == std::vector<int64_t>{0, 0} && pointwiseFits(x, w);
}

bool takesGemmWeightGrad(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w) {
  return g.gemmWeightGrad && !g.transposed && g.stride == std::vector<int64_t>{1, 1} && g.padding == std::vector<int64_t>{1, 1} &&
         !takesWinograd(g, x, w) && gemmWeightGradFits(x, w);
}

// Whether the pointwise products take and give channels-last tensors: where the geometry asks for
// it, or t arrives so.
bool pointwiseChannelsLast(const ConvGeometry& g, const at::Tensor& t) {
  return g.channelsLast || (t.suggest_memory_format() == at::MemoryFormat::ChannelsLast && !t.is_contiguous());
}

// A transposed convolution on the CPU, run as the ordinary convolution it is the adjoint of: its
// output is that convolution's input gradient for the same weight, its input gradient is that
// convolution, and its weight gradient is that convolution's weight gradient with the roles of
// input and output gradient swapped. ATen's CPU backend selection sends transposed convolutions to
// its im2col fallback (slow_conv_transpose2d); these three are oneDNN's kernels.
bool asOrdinary(const ConvGeometry& g, const at::Tensor& x) {
  return g.transposed && x.is_cpu() && std::all_of(g.outputPadding.begin(), g.outputPadding.end(), [](int64_t p) { return p == 0; });
}

const std::vector<int64_t> kNoOutputPadding{0, 0};

// y + b over the channel dimension, in place in y (a kernel's fresh output); b may be absent.
at::Tensor plusBias(at::Tensor y, const std::optional<at::Tensor>& b) { return b ? y.add_(b->view({1, -1, 1, 1})) : y; }

// The three kernels, without autograd. `like` tensors only lend their shape.
at::Tensor forwardKernel(const at::Tensor& xIn, const at::Tensor& wIn, const std::optional<at::Tensor>& b,
                         const ConvGeometry& g) {
  if (takesWinograd(g, xIn, wIn)) return plusBias(winogradConvolution(xIn, wIn), b);
  if (takesPointwise(g, xIn, wIn) && pointwisePays(wIn, wIn.size(1), xIn.size(2) * xIn.size(3)))
    return pointwiseConvolution(xIn, wIn, b, pointwiseChannelsLast(g, xIn));
  const auto x = laidOut(xIn, g), w = laidOut(wIn, g);
  if (asOrdinary(g, x)) {
    std::vector<int64_t> shape{x.size(0), w.size(1)};
    for (int d = 0; d < 2; ++d) shape.push_back((x.size(2 + d) - 1) * g.stride[d] - 2 * g.padding[d] + w.size(2 + d));
    return plusBias(std::get<0>(at::convolution_backward(x, at::empty(shape, x.options(), x.suggest_memory_format()), w, std::nullopt,
                                                         g.stride, g.padding, {1, 1}, false, kNoOutputPadding, 1, {true, false, false})),
                    b);
  }
  return at::convolution(x, w, b, g.stride, g.padding, {1, 1}, g.transposed, g.outputPadding, 1);
}

// A tensor shaped like t in the layout g's kernels take, for a kernel that reads only its shape and
// layout: ATen picks a convolution's memory format from its input's, and for an NCHW input (D's
// fromRGB reads the NCHW images) it copied the channels-last output gradient to NCHW before
// computing the input gradient (32² fading step on an H100: 0.27 ms for one such copy).
at::Tensor shapeLaidOut(const at::Tensor& t, const ConvGeometry& g) {
  if (!g.channelsLast || g.winograd || t.is_contiguous(at::MemoryFormat::ChannelsLast)) return t;
  return at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::ChannelsLast));
}

at::Tensor inputGradKernel(const at::Tensor& gradOutIn, const at::Tensor& wIn, const at::Tensor& xLike,
                           const ConvGeometry& g) {
  if (takesWinograd(g, xLike, wIn)) return winogradInputGrad(gradOutIn, wIn);
  if (takesPointwise(g, xLike, wIn) && pointwisePays(wIn, wIn.size(0), xLike.size(2) * xLike.size(3)))
    return pointwiseInputGrad(gradOutIn, wIn, pointwiseChannelsLast(g, gradOutIn));
  const auto gradOut = laidOut(gradOutIn, g), w = laidOut(wIn, g);
  if (asOrdinary(g, xLike)) return at::convolution(gradOut, w, std::nullopt, g.stride, g.padding, {1, 1}, false, kNoOutputPadding, 1);
  return std::get<0>(at::convolution_backward(gradOut, shapeLaidOut(xLike, g), w, std::nullopt, g.stride, g.padding, {1, 1},
                                              g.transposed, g.outputPadding, 1, {true, false, false}));
}

at::Tensor weightGradKernel(const at::Tensor& xIn, const at::Tensor& gradOutIn, const at::Tensor& wLike,
                            const ConvGeometry& g) {
  if (takesWinograd(g, xIn, wLike)) return winogradWeightGrad(xIn, gradOutIn);
  if (takesPointwise(g, xIn, wLike)) return pointwiseWeightGrad(xIn, gradOutIn, pointwiseChannelsLast(g, xIn));
  if (takesGemmWeightGrad(g, xIn, wLike)) return gemmWeightGrad(xIn, gradOutIn);
  const auto x = laidOut(xIn, g), gradOut = laidOut(gradOutIn, g);
  if (asOrdinary(g, x))
    return std::get<1>(at::convolution_backward(x, gradOut, wLike, std::nullopt, g.stride, g.padding, {1, 1}, false,
                                                kNoOutputPadding, 1, {false, true, false}));
  return std::get<1>(at::convolution_backward(gradOut, x, wLike, std::nullopt, g.stride, g.padding, {1, 1},
                                              g.transposed, g.outputPadding, 1, {false, true, false}));
}

// What each of the three functions below keeps for its backward: two tensors and the geometry,
// with undefined incoming gradients left undefined (see below).
void keepForBackward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, const ConvGeometry& g) {
  ctx->set_materialize_grads(false);
  ctx->save_for_backward({a, b});
  ctx->saved_data["stride"] = g.stride;
  ctx->saved_data["padding"] = g.padding;
  ctx->saved_data["outputPadding"] = g.outputPadding;
  ctx->saved_data["transposed"] = g.transposed;
  ctx->saved_data["winograd"] = g.winograd;
  ctx->saved_data["pointwise"] = g.pointwise;
  ctx->saved_data["gemmWeightGrad"] = g.gemmWeightGrad;
  ctx->saved_data["channelsLast"] = g.channelsLast;
}

ConvGeometry loadGeometry(AutogradContext* ctx) {
  ConvGeometry g;
  g.stride = ctx->saved_data["stride"].toIntVector();
  g.padding = ctx->saved_data["padding"].toIntVector();
  g.outputPadding = ctx->saved_data["outputPadding"].toIntVector();
  g.transposed = ctx->saved_data["transposed"].toBool();
  g.winograd = ctx->saved_data["winograd"].toBool();
  g.pointwise = ctx->saved_data["pointwise"].toBool();
  g.gemmWeightGrad = ctx->saved_data["gemmWeightGrad"].toBool();
  g.channelsLast = ctx->saved_data["channelsLast"].toBool();
  return g;
}

// An undefined incoming gradient means "none" (leaky_relu.h sends it for a derivative that is zero):
// it is passed on as undefined instead of being materialised and convolved as zeros.
//
// Each of the three maps is linear in each of its two tensor arguments, so each derivative is one
// of the other maps (⟨a, dgrad(gO, w)⟩ = ⟨conv(a, w), gO⟩, ⟨a, wgrad(x, gO)⟩ = ⟨conv(x, a), gO⟩),
// and the three functions below close under differentiation.
struct ConvFunction;
struct InputGradFunction;
struct WeightGradFunction;

// y = conv(x, w) + b. The bias is optional because autograd functions take no undefined tensors.
struct ConvFunction : Function<ConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const std::optional<at::Tensor>& b, const ConvGeometry& g) {
    keepForBackward(ctx, x, w, g);
    ctx->saved_data["bias"] = b.has_value();
    return forwardKernel(x, w, b, g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// gx = dgrad(gO, w): the input gradient of conv(·, w) for the output gradient gO.
struct InputGradFunction : Function<InputGradFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gradOut, const at::Tensor& w,
                            const at::Tensor& xLike, const ConvGeometry& g) {
    keepForBackward(ctx, gradOut, w, g);
    return inputGradKernel(gradOut, w, xLike, g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// gw = wgrad(x, gO): the weight gradient of conv(x, ·) for the output gradient gO.
struct WeightGradFunction : Function<WeightGradFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& gradOut,
                            const at::Tensor& wLike, const ConvGeometry& g) {
    keepForBackward(ctx, x, gradOut, g);
    return weightGradKernel(x, gradOut, wLike, g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

variable_list ConvFunction::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto &x = saved[0], &w = saved[1];
  const auto& gradOut = grads[0];
  if (!gradOut.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  const auto g = loadGeometry(ctx);
  const bool withBias = ctx->saved_data["bias"].toBool();
  if (!torch::autograd::GradMode::is_enabled() && !takesWinograd(g, x, w) && !takesPointwise(g, x, w) && !asOrdinary(g, x)) {
    // A backward that will not be differentiated (the last one of a step): one ATen call computes
    // the input, weight and bias gradients (oneDNN sums the bias gradient inside its weight kernel).
    // Winograd's kernels, the 1×1 products and the transposed convolutions run as ordinary ones are
    // separate calls, taken below; the weight gradient as matrix products is one here.
    const std::array<bool, 3> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1), withBias && ctx->needs_input_grad(2)};
    const std::vector<int64_t> biasSizes{gradOut.size(1)};
    const auto go = laidOut(gradOut, g), xl = laidOut(x, g), wl = laidOut(w, g);
    const auto backward = [&](std::array<bool, 3> which) {
      return at::convolution_backward(go, xl, wl, which[2] ? at::OptionalIntArrayRef(biasSizes) : std::nullopt, g.stride, g.padding, {1, 1},
                                      g.transposed, g.outputPadding, 1, which);
    };
    const bool gemm = takesGemmWeightGrad(g, x, w);
    const auto weightAndBias = [&] {
      if (!gemm) {
        auto [unused, gw, gb] = backward({false, mask[1], mask[2]});
        return std::vector<at::Tensor>{gw, gb};
      }
      return std::vector<at::Tensor>{mask[1] ? gemmWeightGrad(xl, go) : at::Tensor(), mask[2] ? go.sum({0, 2, 3}) : at::Tensor()};
    };
    if (x.is_cuda() && mask[0] && mask[1]) {
      // The weight (and bias) gradient on a second stream beside the input gradient (layers/side_stream.h).
      at::Tensor gx;
      const auto sums = alongside({go, xl, wl}, weightAndBias, [&] { gx = std::get<0>(backward({true, false, false})); });
      return {gx, sums[0], sums[1], at::Tensor()};
    }
    if (!gemm) {
      auto [gx, gw, gb] = backward(mask);
      return {gx, gw, gb, at::Tensor()};
    }
    const auto gx = mask[0] ? std::get<0>(backward({true, false, false})) : at::Tensor();
    const auto sums = weightAndBias();
    return {gx, sums[0], sums[1], at::Tensor()};
  }
  at::Tensor gx, gw, gb;
  if (ctx->needs_input_grad(0)) gx = InputGradFunction::apply(gradOut, w, x.detach(), g);
  if (ctx->needs_input_grad(1)) gw = WeightGradFunction::apply(x, gradOut, w.detach(), g);
  if (withBias && ctx->needs_input_grad(2)) gb = gradOut.sum({0, 2, 3});
  return {gx, gw, gb, at::Tensor()};
}

variable_list InputGradFunction::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto &gradOut = saved[0], &w = saved[1];
  const auto& a = grads[0];  // shaped like x
  if (!a.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  const auto g = loadGeometry(ctx);
  at::Tensor dGradOut, dw;
  if (a.is_cuda() && !torch::autograd::GradMode::is_enabled() && ctx->needs_input_grad(0) && ctx->needs_input_grad(1)) {
    // The gradient penalty's weight-gradient term on a second stream beside the forward convolution (layers/side_stream.h).
    dw = alongside({a, gradOut, w}, [&] { return std::vector<at::Tensor>{WeightGradFunction::apply(a, gradOut, w.detach(), g)}; },
                   [&] { dGradOut = ConvFunction::apply(a, w, std::nullopt, g); })[0];
    return {dGradOut, dw, at::Tensor(), at::Tensor()};
  }
  if (ctx->needs_input_grad(0)) dGradOut = ConvFunction::apply(a, w, std::nullopt, g);
  if (ctx->needs_input_grad(1)) dw = WeightGradFunction::apply(a, gradOut, w.detach(), g);
  return {dGradOut, dw, at::Tensor(), at::Tensor()};
}

variable_list WeightGradFunction::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto &x = saved[0], &gradOut = saved[1];
  const auto& a = grads[0];  // shaped like w
  if (!a.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  const auto g = loadGeometry(ctx);
  at::Tensor dx, dGradOut;
  if (ctx->needs_input_grad(0)) dx = InputGradFunction::apply(gradOut, a, x.detach(), g);
  if (ctx->needs_input_grad(1)) dGradOut = ConvFunction::apply(x, a, std::nullopt, g);
  return {dx, dGradOut, at::Tensor(), at::Tensor()};
}

// out = t·scale, written with `outStrides` (t's sizes) in the same pass. Its gradient is the same
// map back into t's layout.
struct ScaledCopyFunction : Function<ScaledCopyFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& t, double scale, std::vector<int64_t> outStrides) {
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["inputStrides"] = gradientStrides(t);
    auto out = at::empty_strided(t.sizes(), outStrides, t.options());
    // A tensor operand: mul_out with a Scalar multiplies into a temporary and copies that over.
    auto factor = c10::scalar_to_tensor(at::Scalar(scale));
    factor.unsafeGetTensorImpl()->set_wrapped_number(true);
    return at::mul_out(out, t, factor);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    return {ScaledCopyFunction::apply(grads[0], ctx->saved_data["scale"].toDouble(), ctx->saved_data["inputStrides"].toIntVector()),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor scaledKernel(const at::Tensor& w, double scale, const ConvGeometry& g) {
  const bool relayout = g.channelsLast && !g.winograd && w.dim() == 4 && !w.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!relayout || !w.is_non_overlapping_and_dense()) {
    const auto scaled = scale == 1.0 ? w : w * scale;
    return laidOut(scaled, g);
  }
  return ScaledCopyFunction::apply(w, scale, layoutStrides(w.sizes(), /*channelsLast=*/true));
}

at::Tensor laidOut(const at::Tensor& t, const ConvGeometry& g) {
  return g.channelsLast && !g.winograd ? t.contiguous(at::MemoryFormat::ChannelsLast) : t;
}

at::Tensor convolution(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeometry& geometry) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4, "convolution expects a 4-D input and weight but received ", x.sizes(),
              " and ", w.sizes());
  return ConvFunction::apply(x, w, b.defined() ? std::optional<at::Tensor>(b) : std::nullopt, geometry);
}

}  // namespace progan
