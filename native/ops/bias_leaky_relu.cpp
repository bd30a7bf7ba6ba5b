#include "ops/bias_leaky_relu.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <optional>

#include "layers/leaky_relu.h"
#include "layers/vector_clones.h"
#include "ops/channel_layout.h"

namespace progan {

namespace {
// Elements per parallel task: below this a thread's wake-up costs more than the pass.
constexpr int64_t kGrain = 32768;

std::vector<int64_t> allButChannels(const at::Tensor& t) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < t.dim(); ++d) dims.push_back(d);
  return dims;
}

at::Tensor channelView(const at::Tensor& bias, int64_t dims) {
  return dims == 4 ? bias.view({1, -1, 1, 1}) : bias.view({1, -1});
}

// The loops, one row (channels inner: a bias per element) or one plane (NCHW: one bias) at a time,
// in every vector width (layers/vector_clones.h).
template <class T>
PROGAN_VECTOR_CLONES void forwardRow(const T* y, const T* bias, T* z, int64_t c, T scale) {
  for (int64_t k = 0; k < c; ++k) {
    const T v = y[k] * scale + bias[k];
    z[k] = v > 0 ? v : v * T(kLeakySlope);
  }
}
template <class T>
PROGAN_VECTOR_CLONES void forwardPlane(const T* y, T bias, T* z, int64_t p, T scale) {
  for (int64_t k = 0; k < p; ++k) {
    const T v = y[k] * scale + bias;
    z[k] = v > 0 ? v : v * T(kLeakySlope);
  }
}
// gy = s·g·lrelu'(z); the unscaled g·lrelu'(z) added to sums (per element) or returned (summed).
template <class T, class Acc>
PROGAN_VECTOR_CLONES void backwardRow(const T* g, const T* z, T* gy, Acc* sums, int64_t c, T scale) {
  for (int64_t k = 0; k < c; ++k) {
    const T v = z[k] > 0 ? g[k] : g[k] * T(kLeakySlope);
    gy[k] = v * scale;
    sums[k] += v;
  }
}
template <class T, class Acc>
PROGAN_VECTOR_CLONES Acc backwardPlane(const T* g, const T* z, T* gy, int64_t p, T scale) {
  Acc sum = 0;
  for (int64_t k = 0; k < p; ++k) {
    const T v = z[k] > 0 ? g[k] : g[k] * T(kLeakySlope);
    gy[k] = v * scale;
    sum += v;
  }
  return sum;
}
}  // namespace

namespace kernels {

at::Tensor biasLeakyReluCpu(const at::Tensor& yIn, const at::Tensor& bias, double scaleIn) {
  const auto [y, l] = denseChannels(yIn);
  auto out = at::empty_like(y);
  const auto b = bias.contiguous();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "biasLeakyReluCpu", [&] {
    const scalar_t* src = y.const_data_ptr<scalar_t>();
    const scalar_t* bb = b.const_data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const auto scale = scalar_t(scaleIn);
    const int64_t c = l.channels, p = l.pixels;
    if (l.channelsInner) {
      at::parallel_for(0, l.samples * p, std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) forwardRow(src + row * c, bb, dst + row * c, c, scale);
      });
    } else {
      at::parallel_for(0, l.samples * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(p, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) forwardPlane(src + plane * p, bb[plane % c], dst + plane * p, p, scale);
      });
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> biasLeakyReluBackwardCpu(const at::Tensor& gradIn, const at::Tensor& zIn, double scaleIn) {
  const auto [z, l] = denseChannels(zIn);
  const auto g = inChannelLayout(gradIn, l);
  auto gy = at::empty_like(z);
  const int64_t c = l.channels, p = l.pixels;
  // Partial sums: one row of C per block of kRowBlock pixel rows (channels inner) or one per plane
  // (NCHW), each summed in order by one task, then added up over the first dimension.
  constexpr int64_t kRowBlock = 64;
  const int64_t rows = l.samples * p;
  const int64_t parts = l.channelsInner ? (rows + kRowBlock - 1) / kRowBlock : l.samples;
  auto partial = at::empty({parts, c}, z.options().dtype(at::toOpMathType(z.scalar_type())));
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "biasLeakyReluBackwardCpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gs = g.const_data_ptr<scalar_t>();
    const scalar_t* zs = z.const_data_ptr<scalar_t>();
    scalar_t* out = gy.data_ptr<scalar_t>();
    acc_t* sums = partial.data_ptr<acc_t>();
    const auto scale = scalar_t(scaleIn);
    if (l.channelsInner) {
      at::parallel_for(0, parts, std::max<int64_t>(1, kGrain / (kRowBlock * std::max<int64_t>(c, 1))), [&](int64_t begin, int64_t end) {
        for (int64_t part = begin; part < end; ++part) {
          acc_t* s = sums + part * c;
          std::fill_n(s, c, acc_t(0));
          for (int64_t row = part * kRowBlock; row < std::min(rows, (part + 1) * kRowBlock); ++row)
            backwardRow(gs + row * c, zs + row * c, out + row * c, s, c, scale);
        }
      });
    } else {
      at::parallel_for(0, l.samples * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(p, 1)), [&](int64_t begin, int64_t end) {
        // partial is [N, C]: plane n·C + c
        for (int64_t plane = begin; plane < end; ++plane)
          sums[plane] = backwardPlane<scalar_t, acc_t>(gs + plane * p, zs + plane * p, out + plane * p, p, scale);
      });
    }
  });
  return {gy, partial.sum(0).to(z.scalar_type())};
}

}  // namespace kernels

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BiasLeakyReluFunction : torch::autograd::Function<BiasLeakyReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& bias, double scale) {
    ctx->set_materialize_grads(false);
#ifdef PROGAN_WITH_CUDA
    auto z = y.is_cuda() ? kernels::biasLeakyReluCuda(y, bias) : kernels::biasLeakyReluCpu(y, bias, scale);
#else
    auto z = kernels::biasLeakyReluCpu(y, bias, scale);
#endif
    // The output decides the slope as well as the input would (same sign), and the next layer keeps it anyway.
    ctx->save_for_backward({z});
    ctx->saved_data["scale"] = scale;
    return z;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto z = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    if (!torch::autograd::GradMode::is_enabled() && ctx->needs_input_grad(1)) {
      // Not differentiated again: both gradients in one pass.
      std::optional<std::tuple<at::Tensor, at::Tensor>> both;
#ifdef PROGAN_WITH_CUDA
      if (z.is_cuda() && channelsInner(z)) both = kernels::biasLeakyReluBackwardCuda(grads[0], z);
#endif
      if (z.is_cpu()) both = kernels::biasLeakyReluBackwardCpu(grads[0], z, scale);
      if (both) return {ctx->needs_input_grad(0) ? std::get<0>(*both) : at::Tensor(), std::get<1>(*both), at::Tensor()};
    }
    const auto gz = lreluGrad(grads[0], z);
    at::Tensor gb;
    if (ctx->needs_input_grad(1)) gb = gz.sum(allButChannels(gz));
    at::Tensor gy;
    if (ctx->needs_input_grad(0)) gy = scale == 1.0 ? gz : gz * scale;
    return {gy, gb, at::Tensor()};
  }
};

}  // namespace

namespace ops_reference {
at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias, double scale) {
  return lrelu((scale == 1.0 ? y : y * scale) + channelView(bias, y.dim()));
}
}  // namespace ops_reference

at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias, OpsImpl impl, double scale) {
  TORCH_CHECK((y.dim() == 2 || y.dim() == 4) && bias.dim() == 1 && bias.size(0) == y.size(1),
              "biasLeakyRelu expects y of shape [N, C] or [N, C, H, W] and a bias of shape [C] but received ", y.sizes(), " and ",
              bias.sizes());
  TORCH_CHECK(bias.device() == y.device(), "biasLeakyRelu expects y and the bias on one device but received ", y.device(),
              " and ", bias.device());
  const auto type = y.scalar_type();
  const bool kernel = (type == at::kFloat || type == at::kDouble) && bias.scalar_type() == type && (y.is_cpu() || (y.is_cuda() && scale == 1.0));
  if (impl == OpsImpl::Reference || !kernel) return ops_reference::biasLeakyRelu(y, bias, scale);
  return BiasLeakyReluFunction::apply(y, bias, scale);
}

}  // namespace progan
