#include "layers/shifted_sum.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

// Position of K[a][b] in the stored 4×4 kernel.
inline int kernelIndex(int a, int b, bool flip) { return flip ? (3 - a) * 4 + (3 - b) : a * 4 + b; }

// K from w, one [3×3] → [4×4] block per (o, i).
at::Tensor shiftedSumCpu(const at::Tensor& w, bool flip, double scale) {
  const auto src = w.contiguous();
  auto out = at::empty({w.size(0), w.size(1), 4, 4}, w.options());
  const int64_t blocks = w.size(0) * w.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, w.scalar_type(), "shiftedSumCpu", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const auto s = static_cast<scalar_t>(scale);
    at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* k = in + p * 9;
        auto at3 = [&](int r, int c) { return r >= 0 && r < 3 && c >= 0 && c < 3 ? k[r * 3 + c] : scalar_t(0); };
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b) {
            scalar_t v = at3(a, b) + at3(a - 1, b);
            v = v + at3(a, b - 1);
            v = v + at3(a - 1, b - 1);
            o[p * 16 + kernelIndex(a, b, flip)] = scale == 1.0 ? v : scalar_t(v * s);
          }
      }
    });
  });
  return out;
}

// The adjoint: g[r][c] = Σ of the four K entries w[r][c] feeds, times `scale`.
at::Tensor shiftedSumAdjointCpu(const at::Tensor& grad, bool flip, double scale) {
  const auto src = grad.contiguous();
  auto out = at::empty({grad.size(0), grad.size(1), 3, 3}, grad.options());
  const int64_t blocks = grad.size(0) * grad.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad.scalar_type(), "shiftedSumAdjointCpu", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const auto s = static_cast<scalar_t>(scale);
    at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* g = in + p * 16;
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c) {
            scalar_t v = g[kernelIndex(r, c, flip)] + g[kernelIndex(r + 1, c, flip)];
            v = v + g[kernelIndex(r, c + 1, flip)];
            v = v + g[kernelIndex(r + 1, c + 1, flip)];
            o[p * 9 + r * 3 + c] = scale == 1.0 ? v : scalar_t(v * s);
          }
      }
    });
  });
  return out;
}

struct ShiftedSumFunction;
struct ShiftedSumAdjointFunction;

void saveFlags(AutogradContext* ctx, bool flip, double scale) {
  ctx->saved_data["flip"] = flip;
  ctx->saved_data["scale"] = scale;
}

struct ShiftedSumFunction : Function<ShiftedSumFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, bool flip, double scale) {
    saveFlags(ctx, flip, scale);
    return shiftedSumCpu(w, flip, scale);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct ShiftedSumAdjointFunction : Function<ShiftedSumAdjointFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, bool flip, double scale) {
    saveFlags(ctx, flip, scale);
    return shiftedSumAdjointCpu(grad, flip, scale);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

variable_list ShiftedSumFunction::backward(AutogradContext* ctx, variable_list grads) {
  const bool flip = ctx->saved_data["flip"].toBool();
  const double scale = ctx->saved_data["scale"].toDouble();
  return {ShiftedSumAdjointFunction::apply(grads[0], flip, scale), at::Tensor(), at::Tensor()};
}

variable_list ShiftedSumAdjointFunction::backward(AutogradContext* ctx, variable_list grads) {
  const bool flip = ctx->saved_data["flip"].toBool();
  const double scale = ctx->saved_data["scale"].toDouble();
  return {ShiftedSumFunction::apply(grads[0], flip, scale), at::Tensor(), at::Tensor()};
}

// [9, 16]: column (a, b) holds `scale` at the rows of the 3×3 entries K[a][b] sums.
at::Tensor shiftedSumMatrix(bool flip, double scale, const at::TensorOptions& options) {
  auto m = at::zeros({9, 16}, at::kDouble);
  auto acc = m.accessor<double, 2>();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int dr = 0; dr < 2; ++dr)
        for (int dc = 0; dc < 2; ++dc) acc[r * 3 + c][kernelIndex(r + dr, c + dc, flip)] = scale;
  return m.to(options);
}

}  // namespace

at::Tensor shiftedSum(const at::Tensor& w, bool flip, double scale) {
  TORCH_CHECK(w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3, "shiftedSum expects [O, I, 3, 3] but received ",
              w.sizes());
  if (w.is_cpu()) return ShiftedSumFunction::apply(w, flip, scale);
  const int64_t o = w.size(0), i = w.size(1);
  return at::mm(w.reshape({o * i, 9}), shiftedSumMatrix(flip, scale, w.options())).view({o, i, 4, 4});
}

}  // namespace progan
