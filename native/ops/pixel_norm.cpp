#include "ops/pixel_norm.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "ops/channel_layout.h"

namespace progan {

namespace kernels {

namespace {

// Pixels per task in NCHW order: each channel's run of them is one vectorised inner loop.
constexpr int64_t kPixelBlock = 256;
// Elements per parallel task: below this a thread's wake-up costs more than the pass.
constexpr int64_t kGrain = 32768;

// Calls perBlock(inner, sample, first pixel, pixel count) over every pixel, in parallel tasks: one
// pixel at a time where channels are inner (its C values adjacent), a block of adjacent pixels at a
// time in NCHW. `inner` is std::true_type or std::false_type, so that each order's loops compile
// with their unit stride known.
template <typename PerBlock>
void forEachPixelBlock(const ChannelLayout& l, const PerBlock& perBlock) {
  const int64_t c = std::max<int64_t>(l.channels, 1);
  if (l.channelsInner) {
    at::parallel_for(0, l.samples * l.pixels, std::max<int64_t>(1, kGrain / c), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) perBlock(std::true_type{}, t / l.pixels, t % l.pixels, int64_t(1));
    });
    return;
  }
  const int64_t blocks = (l.pixels + kPixelBlock - 1) / kPixelBlock;
  at::parallel_for(0, l.samples * blocks, std::max<int64_t>(1, kGrain / (c * kPixelBlock)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t first = (t % blocks) * kPixelBlock;
      perBlock(std::false_type{}, t / blocks, first, std::min(kPixelBlock, l.pixels - first));
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> pixelNormCpu(const at::Tensor& xIn, double epsilon) {
  const auto [x, l] = denseChannels(xIn);
  auto y = at::empty_like(x);
  auto r = at::empty({l.samples, l.pixels}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelNormCpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xs = x.const_data_ptr<scalar_t>();
    scalar_t* ys = y.data_ptr<scalar_t>();
    scalar_t* rs = r.data_ptr<scalar_t>();
    const int64_t c = l.channels, p = l.pixels;
    const acc_t inverseC = acc_t(1) / acc_t(c), eps = acc_t(epsilon);
    forEachPixelBlock(l, [&](auto inner, int64_t n, int64_t first, int64_t count) {
      // Element (channel k, pixel q) of a sample sits at k·cs + q·ps.
      const int64_t cs = inner ? 1 : p, ps = inner ? c : 1;
      acc_t sums[kPixelBlock];
      std::fill_n(sums, count, acc_t(0));
      const scalar_t* xn = xs + n * c * p + first * ps;
      scalar_t* yn = ys + n * c * p + first * ps;
      for (int64_t k = 0; k < c; ++k)
        for (int64_t q = 0; q < count; ++q) {
          const acc_t v = xn[k * cs + q * ps];
          sums[q] += v * v;
        }
      for (int64_t q = 0; q < count; ++q) {
        sums[q] = acc_t(1) / std::sqrt(sums[q] * inverseC + eps);
        rs[n * p + first + q] = scalar_t(sums[q]);
      }
      for (int64_t k = 0; k < c; ++k)
        for (int64_t q = 0; q < count; ++q) yn[k * cs + q * ps] = scalar_t(acc_t(xn[k * cs + q * ps]) * sums[q]);
    });
  });
  return {y, r};
}

at::Tensor pixelNormBackwardCpu(const at::Tensor& gradIn, const at::Tensor& xIn, const at::Tensor& rIn) {
  const auto [x, l] = denseChannels(xIn);
  const auto g = inChannelLayout(gradIn, l);
  const auto r = rIn.contiguous();
  auto gx = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelNormBackwardCpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xs = x.const_data_ptr<scalar_t>();
    const scalar_t* gs = g.const_data_ptr<scalar_t>();
    const scalar_t* rs = r.const_data_ptr<scalar_t>();
    scalar_t* out = gx.data_ptr<scalar_t>();
    const int64_t c = l.channels, p = l.pixels;
    const acc_t inverseC = acc_t(1) / acc_t(c);
    forEachPixelBlock(l, [&](auto inner, int64_t n, int64_t first, int64_t count) {
      const int64_t cs = inner ? 1 : p, ps = inner ? c : 1;
      acc_t dots[kPixelBlock], rr[kPixelBlock];
      std::fill_n(dots, count, acc_t(0));
      const int64_t base = n * c * p + first * ps;
      for (int64_t k = 0; k < c; ++k)
        for (int64_t q = 0; q < count; ++q) {
          const int64_t i = base + k * cs + q * ps;
          dots[q] += acc_t(gs[i]) * acc_t(xs[i]);
        }
      // ∂x = r·g − x·(r³·Σ g·x / C): dots becomes the second factor.
      for (int64_t q = 0; q < count; ++q) {
        rr[q] = rs[n * p + first + q];
        dots[q] = rr[q] * rr[q] * rr[q] * dots[q] * inverseC;
      }
      for (int64_t k = 0; k < c; ++k)
        for (int64_t q = 0; q < count; ++q) {
          const int64_t i = base + k * cs + q * ps;
          out[i] = scalar_t(rr[q] * acc_t(gs[i]) - acc_t(xs[i]) * dots[q]);
        }
    });
  });
  return gx;
}

}  // namespace kernels

namespace ops_reference {
at::Tensor pixelNorm(const at::Tensor& x, double epsilon) { return x * at::rsqrt(x.square().mean(1, /*keepdim=*/true) + epsilon); }
}  // namespace ops_reference

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PixelNormFunction : torch::autograd::Function<PixelNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double epsilon) {
    ctx->set_materialize_grads(false);
#ifdef PROGAN_WITH_CUDA
    auto [y, r] = x.is_cuda() ? kernels::pixelNormCuda(x, epsilon) : kernels::pixelNormCpu(x, epsilon);
#else
    auto [y, r] = kernels::pixelNormCpu(x, epsilon);
#endif
    ctx->save_for_backward({x, r});
    ctx->saved_data["epsilon"] = epsilon;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& g = grads[0];
    if (!g.defined()) return {at::Tensor(), at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &r = saved[1];
    if (torch::autograd::GradMode::is_enabled()) {
      // A backward that will itself be differentiated: the same formula as ATen ops, r recomputed from x in the graph.
      const auto rx = at::rsqrt(x.square().mean(1, /*keepdim=*/true) + ctx->saved_data["epsilon"].toDouble());
      return {g * rx - x * rx.pow(3) * (g * x).mean(1, /*keepdim=*/true), at::Tensor()};
    }
#ifdef PROGAN_WITH_CUDA
    if (x.is_cuda()) return {kernels::pixelNormBackwardCuda(g, x, r), at::Tensor()};
#endif
    return {kernels::pixelNormBackwardCpu(g, x, r), at::Tensor()};
  }
};

}  // namespace

at::Tensor pixelNorm(const at::Tensor& x, double epsilon, OpsImpl impl) {
  TORCH_CHECK(x.dim() == 2 || x.dim() == 4, "pixelNorm expects a tensor of shape [N, C] or [N, C, H, W] but received ", x.sizes());
  TORCH_CHECK(epsilon > 0, "pixelNorm expects a positive epsilon but received ", epsilon);
  const auto type = x.scalar_type();
  const bool kernel = (type == at::kFloat || type == at::kDouble) && x.size(1) > 0 && (x.is_cpu() || x.is_cuda());
  if (impl == OpsImpl::Reference || !kernel) return ops_reference::pixelNorm(x, epsilon);
  return PixelNormFunction::apply(x, epsilon);
}

}  // namespace progan
