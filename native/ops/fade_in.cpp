#include "ops/fade_in.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

namespace progan {

at::Tensor lerpBy(const at::Tensor& a, const at::Tensor& b, const Alpha& alpha) {
  if (!alpha.onDevice.defined()) return at::lerp(a, b, alpha.value);
  TORCH_CHECK(alpha.onDevice.dim() == 0 && alpha.onDevice.device() == b.device(), "lerpBy: α must be a 0-dim tensor on ",
              b.device(), " but is ", alpha.onDevice.sizes(), " on ", alpha.onDevice.device());
  return at::lerp(a, b, alpha.onDevice.to(b.scalar_type()));
}

namespace ops_reference {

at::Tensor upsampleLerp(const at::Tensor& low, const at::Tensor& high, const Alpha& alpha) {
  return lerpBy(at::upsample_nearest2d(low, {high.size(2), high.size(3)}), high, alpha);
}

at::Tensor fadeReals(const at::Tensor& x, const Alpha& alpha) {
  return lerpBy(at::upsample_nearest2d(at::avg_pool2d(x, 2), {x.size(2), x.size(3)}), x, alpha);
}

}  // namespace ops_reference

namespace kernels {

namespace {
// Planes of [N·C, H, W]: one task per plane range, rows walked contiguously.
template <typename Body>
void forPlanes(int64_t planes, int64_t planeSize, Body&& body) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(planeSize, 1));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) body(p);
  });
}
}  // namespace

at::Tensor upsampleLerpCpu(const at::Tensor& lowIn, const at::Tensor& highIn, double alpha) {
  const auto low = lowIn.contiguous(), high = highIn.contiguous();
  auto out = at::empty_like(high);
  const int64_t h = high.size(2), w = high.size(3), planes = high.size(0) * high.size(1);
  AT_DISPATCH_FLOATING_TYPES(high.scalar_type(), "upsampleLerpCpu", [&] {
    const auto* l = low.data_ptr<scalar_t>();
    const auto* hi = high.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    const scalar_t a = scalar_t(alpha), b = scalar_t(1.0 - alpha);
    forPlanes(planes, h * w, [&](int64_t p) {
      const auto* lp = l + p * (h / 2) * (w / 2);
      for (int64_t y = 0; y < h; ++y) {
        const auto* lr = lp + (y / 2) * (w / 2);
        const auto* hr = hi + (p * h + y) * w;
        auto* orow = o + (p * h + y) * w;
        for (int64_t x = 0; x < w; ++x) orow[x] = b * lr[x / 2] + a * hr[x];
      }
    });
  });
  return out;
}

at::Tensor sumPool2xCpu(const at::Tensor& xIn, double scale) {
  const auto x = xIn.contiguous();
  const int64_t h = x.size(2), w = x.size(3), planes = x.size(0) * x.size(1);
  auto out = at::empty({x.size(0), x.size(1), h / 2, w / 2}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sumPool2xCpu", [&] {
    const auto* in = x.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    const scalar_t s = scalar_t(scale);
    forPlanes(planes, h * w, [&](int64_t p) {
      for (int64_t y = 0; y < h / 2; ++y) {
        const auto* r0 = in + (p * h + 2 * y) * w;
        const auto* r1 = r0 + w;
        auto* orow = o + (p * (h / 2) + y) * (w / 2);
        for (int64_t xx = 0; xx < w / 2; ++xx) orow[xx] = s * (r0[2 * xx] + r0[2 * xx + 1] + r1[2 * xx] + r1[2 * xx + 1]);
      }
    });
  });
  return out;
}

at::Tensor upsample2xCpu(const at::Tensor& xIn, double scale) {
  const auto x = xIn.contiguous();
  const int64_t h = x.size(2) * 2, w = x.size(3) * 2, planes = x.size(0) * x.size(1);
  auto out = at::empty({x.size(0), x.size(1), h, w}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upsample2xCpu", [&] {
    const auto* in = x.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    const scalar_t s = scalar_t(scale);
    forPlanes(planes, h * w, [&](int64_t p) {
      for (int64_t y = 0; y < h; ++y) {
        const auto* irow = in + (p * (h / 2) + y / 2) * (w / 2);
        auto* orow = o + (p * h + y) * w;
        for (int64_t xx = 0; xx < w; ++xx) orow[xx] = s * irow[xx / 2];
      }
    });
  });
  return out;
}

at::Tensor fadeRealsCpu(const at::Tensor& xIn, double alpha) {
  const auto x = xIn.contiguous();
  auto out = at::empty_like(x);
  const int64_t h = x.size(2), w = x.size(3), planes = x.size(0) * x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fadeRealsCpu", [&] {
    const auto* in = x.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    const scalar_t a = scalar_t(alpha), b = scalar_t((1.0 - alpha) * 0.25);
    forPlanes(planes, h * w, [&](int64_t p) {
      for (int64_t y = 0; y < h; y += 2) {
        const auto* r0 = in + (p * h + y) * w;
        const auto* r1 = r0 + w;
        auto* o0 = o + (p * h + y) * w;
        auto* o1 = o0 + w;
        for (int64_t xx = 0; xx < w; xx += 2) {
          const scalar_t m = b * (r0[xx] + r0[xx + 1] + r1[xx] + r1[xx + 1]);
          o0[xx] = m + a * r0[xx];
          o0[xx + 1] = m + a * r0[xx + 1];
          o1[xx] = m + a * r1[xx];
          o1[xx + 1] = m + a * r1[xx + 1];
        }
      }
    });
  });
  return out;
}

}  // namespace kernels

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool onCuda(const at::Tensor& t) { return t.is_cuda(); }

at::Tensor runSumPool(const at::Tensor& x, double s) {
#ifdef PROGAN_WITH_CUDA
  if (onCuda(x)) return kernels::sumPool2xCuda(x, s);
#endif
  TORCH_CHECK(!onCuda(x), "progan was built without CUDA kernels");
  return kernels::sumPool2xCpu(x, s);
}

at::Tensor runUpsample(const at::Tensor& x, double s) {
#ifdef PROGAN_WITH_CUDA
  if (onCuda(x)) return kernels::upsample2xCuda(x, s);
#endif
  TORCH_CHECK(!onCuda(x), "progan was built without CUDA kernels");
  return kernels::upsample2xCpu(x, s);
}

// s·Σ2×2 and s·upsample2x are adjoint: each one's backward is the other, so every order of
// derivative stays on the fused kernels.
struct SumPool2x : torch::autograd::Function<SumPool2x> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double s);
  static variable_list backward(AutogradContext* ctx, variable_list g);
};
struct Upsample2x : torch::autograd::Function<Upsample2x> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double s);
  static variable_list backward(AutogradContext* ctx, variable_list g);
};

at::Tensor SumPool2x::forward(AutogradContext* ctx, const at::Tensor& x, double s) {
  ctx->saved_data["s"] = s;
  return runSumPool(x, s);
}
variable_list SumPool2x::backward(AutogradContext* ctx, variable_list g) {
  return {Upsample2x::apply(g[0], ctx->saved_data["s"].toDouble()), at::Tensor()};
}
at::Tensor Upsample2x::forward(AutogradContext* ctx, const at::Tensor& x, double s) {
  ctx->saved_data["s"] = s;
  return runUpsample(x, s);
}
variable_list Upsample2x::backward(AutogradContext* ctx, variable_list g) {
  return {SumPool2x::apply(g[0], ctx->saved_data["s"].toDouble()), at::Tensor()};
}

struct UpsampleLerp : torch::autograd::Function<UpsampleLerp> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& low, const at::Tensor& high, double alpha) {
    ctx->saved_data["alpha"] = alpha;
#ifdef PROGAN_WITH_CUDA
    if (onCuda(high)) return kernels::upsampleLerpCuda(low, high, alpha);
#endif
    return kernels::upsampleLerpCpu(low, high, alpha);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const double alpha = ctx->saved_data["alpha"].toDouble();
    return {SumPool2x::apply(g[0], 1.0 - alpha), g[0] * alpha, at::Tensor()};
  }
};

// α·I + (1−α)·U·A is self-adjoint (U = nearest ×2, A = 2×2 mean), so its backward is itself.
struct FadeReals : torch::autograd::Function<FadeReals> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double alpha) {
    ctx->saved_data["alpha"] = alpha;
#ifdef PROGAN_WITH_CUDA
    if (onCuda(x)) return kernels::fadeRealsCuda(x, alpha);
#endif
    return kernels::fadeRealsCpu(x, alpha);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    return {FadeReals::apply(g[0], ctx->saved_data["alpha"].toDouble()), at::Tensor()};
  }
};

bool kernelSupports(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

}  // namespace

at::Tensor upsampleLerp(const at::Tensor& low, const at::Tensor& high, const Alpha& alpha, OpsImpl impl) {
  TORCH_CHECK(low.dim() == 4 && high.dim() == 4 && low.size(0) == high.size(0) && low.size(1) == high.size(1) &&
                  high.size(2) == 2 * low.size(2) && high.size(3) == 2 * low.size(3),
              "upsampleLerp: low ", low.sizes(), " must be high ", high.sizes(), " at half the size");
  TORCH_CHECK(low.scalar_type() == high.scalar_type(), "upsampleLerp: low and high must share a dtype");
  if (impl == OpsImpl::Reference || !kernelSupports(high) || alpha.onDevice.defined())
    return ops_reference::upsampleLerp(low, high, alpha);
  return UpsampleLerp::apply(low, high, alpha.value);
}

at::Tensor fadeReals(const at::Tensor& x, const Alpha& alpha, OpsImpl impl) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0, "fadeReals: expected [N, C, H, W] with even H, W but received ",
              x.sizes());
  if (impl == OpsImpl::Reference || !kernelSupports(x) || alpha.onDevice.defined()) return ops_reference::fadeReals(x, alpha);
  return FadeReals::apply(x, alpha.value);
}

}  // namespace progan
