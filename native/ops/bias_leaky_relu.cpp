#include "ops/bias_leaky_relu.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <optional>

#include "layers/leaky_relu.h"
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
}  // namespace

namespace kernels {

at::Tensor biasLeakyReluCpu(const at::Tensor& yIn, const at::Tensor& bias) {
  const auto [y, l] = denseChannels(yIn);
  auto out = at::empty_like(y);
  const auto b = bias.contiguous();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "biasLeakyReluCpu", [&] {
    const scalar_t* src = y.const_data_ptr<scalar_t>();
    const scalar_t* bb = b.const_data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const auto slope = scalar_t(kLeakySlope);
    const int64_t c = l.channels, p = l.pixels;
    if (l.channelsInner) {
      at::parallel_for(0, l.samples * p, std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const scalar_t* s = src + row * c;
          scalar_t* d = dst + row * c;
          for (int64_t k = 0; k < c; ++k) {
            const scalar_t v = s[k] + bb[k];
            d[k] = v > 0 ? v : v * slope;
          }
        }
      });
    } else {
      at::parallel_for(0, l.samples * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(p, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          const scalar_t bias = bb[plane % c];
          const scalar_t* s = src + plane * p;
          scalar_t* d = dst + plane * p;
          for (int64_t k = 0; k < p; ++k) {
            const scalar_t v = s[k] + bias;
            d[k] = v > 0 ? v : v * slope;
          }
        }
      });
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> biasLeakyReluBackwardCpu(const at::Tensor& gradIn, const at::Tensor& zIn) {
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
    const auto slope = scalar_t(kLeakySlope);
    if (l.channelsInner) {
      at::parallel_for(0, parts, std::max<int64_t>(1, kGrain / (kRowBlock * std::max<int64_t>(c, 1))), [&](int64_t begin, int64_t end) {
        for (int64_t part = begin; part < end; ++part) {
          acc_t* s = sums + part * c;
          std::fill_n(s, c, acc_t(0));
          for (int64_t row = part * kRowBlock; row < std::min(rows, (part + 1) * kRowBlock); ++row)
            for (int64_t k = 0; k < c; ++k) {
              const int64_t i = row * c + k;
              const scalar_t v = zs[i] > 0 ? gs[i] : gs[i] * slope;
              out[i] = v;
              s[k] += v;
            }
        }
      });
    } else {
      at::parallel_for(0, l.samples * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(p, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          acc_t s = 0;
          for (int64_t i = plane * p; i < (plane + 1) * p; ++i) {
            const scalar_t v = zs[i] > 0 ? gs[i] : gs[i] * slope;
            out[i] = v;
            s += v;
          }
          sums[plane] = s;  // partial is [N, C]: plane n·C + c
        }
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
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& bias) {
    ctx->set_materialize_grads(false);
#ifdef PROGAN_WITH_CUDA
    auto z = y.is_cuda() ? kernels::biasLeakyReluCuda(y, bias) : kernels::biasLeakyReluCpu(y, bias);
#else
    auto z = kernels::biasLeakyReluCpu(y, bias);
#endif
    // The output decides the slope as well as the input would (same sign), and the next layer keeps it anyway.
    ctx->save_for_backward({z});
    return z;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    const auto z = ctx->get_saved_variables()[0];
    if (!torch::autograd::GradMode::is_enabled() && ctx->needs_input_grad(1)) {
      // Not differentiated again: both gradients in one pass.
      std::optional<std::tuple<at::Tensor, at::Tensor>> both;
#ifdef PROGAN_WITH_CUDA
      if (z.is_cuda() && channelsInner(z)) both = kernels::biasLeakyReluBackwardCuda(grads[0], z);
#endif
      if (z.is_cpu()) both = kernels::biasLeakyReluBackwardCpu(grads[0], z);
      if (both) return {ctx->needs_input_grad(0) ? std::get<0>(*both) : at::Tensor(), std::get<1>(*both)};
    }
    const auto gy = lreluGrad(grads[0], z);
    at::Tensor gb;
    if (ctx->needs_input_grad(1)) gb = gy.sum(allButChannels(gy));
    return {ctx->needs_input_grad(0) ? gy : at::Tensor(), gb};
  }
};

}  // namespace

namespace ops_reference {
at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias) { return lrelu(y + channelView(bias, y.dim())); }
}  // namespace ops_reference

at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias, OpsImpl impl) {
  TORCH_CHECK((y.dim() == 2 || y.dim() == 4) && bias.dim() == 1 && bias.size(0) == y.size(1),
              "biasLeakyRelu expects y of shape [N, C] or [N, C, H, W] and a bias of shape [C] but received ", y.sizes(), " and ",
              bias.sizes());
  TORCH_CHECK(bias.device() == y.device(), "biasLeakyRelu expects y and the bias on one device but received ", y.device(),
              " and ", bias.device());
  const auto type = y.scalar_type();
  const bool kernel = (type == at::kFloat || type == at::kDouble) && bias.scalar_type() == type && (y.is_cpu() || y.is_cuda());
  if (impl == OpsImpl::Reference || !kernel) return ops_reference::biasLeakyRelu(y, bias);
  return BiasLeakyReluFunction::apply(y, bias);
}

}  // namespace progan
