#include "layers/shifted_sum.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <deque>
#include <mutex>
#include <type_traits>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

// Position of K[a][b] in the stored 4×4 kernel.
inline int kernelIndex(int a, int b, bool flip) { return flip ? (3 - a) * 4 + (3 - b) : a * 4 + b; }

// A new [O, I, side, side] tensor whose every (o, i) block is block(in, out) of the same block of
// `t` (`inSize` values in, side² out), in `t`'s dtype.
template <class Block>
at::Tensor perBlock(const at::Tensor& t, int64_t inSize, int64_t side, const Block& block) {
  const auto src = t.contiguous();
  auto out = at::empty({t.size(0), t.size(1), side, side}, t.options());
  const int64_t blocks = t.size(0) * t.size(1), outSize = side * side;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, t.scalar_type(), "shiftedSumCpu", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) block(in + p * inSize, o + p * outSize);
    });
  });
  return out;
}

// `scalar_t` arithmetic, so bfloat16 rounds after every addition as ATen's adds do.
template <class T>
T scaled(T v, double scale) { return scale == 1.0 ? v : T(v * static_cast<T>(scale)); }

// K from w, one [3×3] → [4×4] block per (o, i).
at::Tensor shiftedSumCpu(const at::Tensor& w, bool flip, double scale) {
  return perBlock(w, 9, 4, [&](const auto* k, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    auto at3 = [&](int r, int c) { return r >= 0 && r < 3 && c >= 0 && c < 3 ? k[r * 3 + c] : T(0); };
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        T v = at3(a, b) + at3(a - 1, b);
        v = v + at3(a, b - 1);
        v = v + at3(a - 1, b - 1);
        out[kernelIndex(a, b, flip)] = scaled(v, scale);
      }
  });
}

// The adjoint: g[r][c] = Σ of the four K entries w[r][c] feeds, times `scale`.
at::Tensor shiftedSumAdjointCpu(const at::Tensor& grad, bool flip, double scale) {
  return perBlock(grad, 16, 3, [&](const auto* g, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) {
        T v = g[kernelIndex(r, c, flip)] + g[kernelIndex(r + 1, c, flip)];
        v = v + g[kernelIndex(r, c + 1, flip)];
        v = v + g[kernelIndex(r + 1, c + 1, flip)];
        out[r * 3 + c] = scaled(v, scale);
      }
  });
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

// shiftedSumMatrix on the weights' device, built once per (flip, scale, dtype, device): a fresh one
// each call would copy from host memory and wait for the GPU every step, and could not be captured
// in a CUDA graph.
const at::Tensor& cachedShiftedSumMatrix(bool flip, double scale, const at::TensorOptions& options) {
  struct Entry {
    bool flip;
    double scale;
    at::ScalarType dtype;
    at::Device device;
    at::Tensor matrix;
  };
  static std::mutex mutex;
  static std::deque<Entry> cache;  // deque: references to entries stay valid as it grows
  const auto dtype = options.dtype().toScalarType();
  const auto device = options.device();
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& e : cache)
    if (e.flip == flip && e.scale == scale && e.dtype == dtype && e.device == device) return e.matrix;
  cache.push_back({flip, scale, dtype, device, shiftedSumMatrix(flip, scale, options)});
  return cache.back().matrix;
}

}  // namespace

at::Tensor shiftedSum(const at::Tensor& w, bool flip, double scale) {
  TORCH_CHECK(w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3, "shiftedSum expects [O, I, 3, 3] but received ",
              w.sizes());
  if (w.is_cpu()) return ShiftedSumFunction::apply(w, flip, scale);
  const int64_t o = w.size(0), i = w.size(1);
  return at::mm(w.reshape({o * i, 9}), cachedShiftedSumMatrix(flip, scale, w.options())).view({o, i, 4, 4});
}

}  // namespace progan
