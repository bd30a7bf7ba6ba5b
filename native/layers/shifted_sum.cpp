#include "layers/shifted_sum.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>
#include <type_traits>
#include <vector>

#include "layers/layout.h"

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

// Where each entry (r, c) of a [side, side] block of a 4-D tensor lies from the block's start,
// row-major; `flip` reverses both dimensions. Computed once per call from the strides: a block's
// entries are adjacent in a contiguous kernel and a channel apart in a channels-last one.
template <int Side>
std::array<int64_t, Side * Side> blockOffsets(const at::Tensor& t, bool flip) {
  std::array<int64_t, Side * Side> offsets{};
  for (int r = 0; r < Side; ++r)
    for (int c = 0; c < Side; ++c) {
      const int rr = flip ? Side - 1 - r : r, cc = flip ? Side - 1 - c : c;
      offsets[r * Side + c] = rr * t.stride(2) + cc * t.stride(3);
    }
  return offsets;
}

// For every (o, i) of t [O, I, ·, ·] (any strides: the up-convolution passes a transposed weight),
// block(t's block start, out's block start); same dtype. The (o, i) pairs go in tiles of
// kTile × kTile: between a transposed and a channels-last layout one side's blocks lie far apart
// along o and the other's along i, so a row of either at a time misses the cache on one side.
constexpr int64_t kTile = 16;

template <class BlockFn>
void perBlock(const at::Tensor& t, const at::Tensor& out, const BlockFn& block) {
  const int64_t rows = t.size(0), cols = t.size(1);
  const int64_t tileRows = (rows + kTile - 1) / kTile, tileCols = (cols + kTile - 1) / kTile;
  const auto is = t.strides(), os = out.strides();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, t.scalar_type(), "shiftedSumCpu", [&] {
    const scalar_t* in = t.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, tileRows * tileCols, 4, [&](int64_t begin, int64_t end) {
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t a0 = (tile / tileCols) * kTile, b0 = (tile % tileCols) * kTile;
        for (int64_t a = a0; a < std::min(a0 + kTile, rows); ++a)
          for (int64_t b = b0; b < std::min(b0 + kTile, cols); ++b) block(in + a * is[0] + b * is[1], o + a * os[0] + b * os[1]);
      }
    });
  });
}

// The sums in `scalar_t` arithmetic, so bfloat16 rounds after every addition as ATen's adds do; the
// scale (an equalized layer's, not a power of two) multiplies in float as ATen's bf16 · double does.
template <class T>
T scaled(T v, double scale) {
  using Op = at::opmath_type<T>;
  return scale == 1.0 ? v : T(static_cast<Op>(v) * static_cast<Op>(scale));
}

// Position of K[a][b] in a contiguous 4×4 kernel, reversed in both dimensions when `flip`.
constexpr int kernelIndex(int a, int b, bool flip) { return flip ? (3 - a) * 4 + (3 - b) : a * 4 + b; }

// Offsets within a block stored row-major and whole (3×3, and 4×4 per `Flip`).
constexpr auto compact3 = [](int r, int c) { return r * 3 + c; };
template <bool Flip>
constexpr auto compact4 = [](int a, int b) { return kernelIndex(a, b, Flip); };

// One block of K from the 3×3 block at k: entry (r, c) of w at k[from(r, c)], entry (a, b) of K
// written to o[to(a, b)]. The block is read once into a zero-padded 5×5 array, so the sums need
// no bounds tests; with the offsets known at compile time (the usual layouts, below) the whole
// block is straight-line code.
template <class T, class From, class To>
inline void shiftedSumBlock(const T* k, T* o, double scale, From from, To to) {
  T p[5][5] = {};  // p[r + 1][c + 1] = w[r][c]
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) p[r + 1][c + 1] = k[from(r, c)];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      // ((w[a][b] + w[a−1][b]) + w[a][b−1]) + w[a−1][b−1], the reference's order.
      T v = p[a + 1][b + 1] + p[a][b + 1];
      v = v + p[a + 1][b];
      v = v + p[a][b];
      o[to(a, b)] = scaled(v, scale);
    }
}

// Calls fn(offsets3, offsets4): where the 3×3 blocks of t3 and the 4×4 blocks of t4 lie, as
// functions of (row, column), the 4×4 ones reversed when `flip`. Blocks stored row-major and whole
// (any (o, i) strides: every kernel here but a channels-last one) get compile-time offsets; others
// read them from the strides.
template <class Fn>
void withBlockOffsets(const at::Tensor& t3, const at::Tensor& t4, bool flip, const Fn& fn) {
  const bool compact = t3.stride(2) == 3 && t3.stride(3) == 1 && t4.stride(2) == 4 && t4.stride(3) == 1;
  if (compact && flip) return fn(compact3, compact4<true>);
  if (compact) return fn(compact3, compact4<false>);
  const auto offsets3 = blockOffsets<3>(t3, false);
  const auto offsets4 = blockOffsets<4>(t4, flip);
  fn([&](int r, int c) { return offsets3[r * 3 + c]; }, [&](int a, int b) { return offsets4[a * 4 + b]; });
}

// K from w, one [3×3] → [4×4] block per (o, i), into a tensor with `outStrides`. A version with
// bounds tests and offsets read from arrays took 324 µs a 128×128 call inside a small-preset 8²
// step (5 calls a step, and 3 adjoint calls at 180 µs); this one takes 206 (adjoint 119).
at::Tensor shiftedSumCpu(const at::Tensor& w, bool flip, double scale, at::IntArrayRef outStrides) {
  auto out = at::empty_strided({w.size(0), w.size(1), 4, 4}, outStrides, w.options());
  withBlockOffsets(w, out, flip, [&](auto from, auto to) {
    perBlock(w, out, [&](const auto* k, auto* o) { shiftedSumBlock(k, o, scale, from, to); });
  });
  return out;
}

// One block of the adjoint: g[r][c] = Σ of the four K entries w[r][c] feeds, times `scale`; entry
// (a, b) of K at g[from(a, b)], entry (r, c) written to o[to(r, c)].
template <class T, class From, class To>
inline void shiftedSumAdjointBlock(const T* g, T* o, double scale, From from, To to) {
  T k[4][4];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) k[a][b] = g[from(a, b)];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      T v = k[r][c] + k[r + 1][c];
      v = v + k[r][c + 1];
      v = v + k[r + 1][c + 1];
      o[to(r, c)] = scaled(v, scale);
    }
}

// The adjoint of shiftedSumCpu, into a tensor with `outStrides`.
at::Tensor shiftedSumAdjointCpu(const at::Tensor& grad, bool flip, double scale, at::IntArrayRef outStrides) {
  auto out = at::empty_strided({grad.size(0), grad.size(1), 3, 3}, outStrides, grad.options());
  withBlockOffsets(out, grad, flip, [&](auto to, auto from) {
    perBlock(grad, out, [&](const auto* g, auto* o) { shiftedSumAdjointBlock(g, o, scale, from, to); });
  });
  return out;
}

struct ShiftedSumFunction;
struct ShiftedSumAdjointFunction;

// Each function's gradient takes the layout of the function's input (a parameter's gradient then
// needs no copy to accumulate), and is the other function.
void saveFlags(AutogradContext* ctx, const at::Tensor& input, bool flip, double scale) {
  ctx->saved_data["flip"] = flip;
  ctx->saved_data["scale"] = scale;
  ctx->saved_data["inputStrides"] = gradientStrides(input);
}

struct ShiftedSumFunction : Function<ShiftedSumFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, bool flip, double scale, std::vector<int64_t> outStrides) {
    saveFlags(ctx, w, flip, scale);
    return shiftedSumCpu(w, flip, scale, outStrides);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct ShiftedSumAdjointFunction : Function<ShiftedSumAdjointFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, bool flip, double scale, std::vector<int64_t> outStrides) {
    saveFlags(ctx, grad, flip, scale);
    return shiftedSumAdjointCpu(grad, flip, scale, outStrides);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

variable_list ShiftedSumFunction::backward(AutogradContext* ctx, variable_list grads) {
  const bool flip = ctx->saved_data["flip"].toBool();
  const double scale = ctx->saved_data["scale"].toDouble();
  const auto strides = ctx->saved_data["inputStrides"].toIntVector();
  return {ShiftedSumAdjointFunction::apply(grads[0], flip, scale, strides), at::Tensor(), at::Tensor(), at::Tensor()};
}

variable_list ShiftedSumAdjointFunction::backward(AutogradContext* ctx, variable_list grads) {
  const bool flip = ctx->saved_data["flip"].toBool();
  const double scale = ctx->saved_data["scale"].toDouble();
  const auto strides = ctx->saved_data["inputStrides"].toIntVector();
  return {ShiftedSumFunction::apply(grads[0], flip, scale, strides), at::Tensor(), at::Tensor(), at::Tensor()};
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

at::Tensor shiftedSum(const at::Tensor& w, bool flip, double scale, bool channelsLast) {
  TORCH_CHECK(w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3, "shiftedSum expects [O, I, 3, 3] but received ",
              w.sizes());
  const int64_t o = w.size(0), i = w.size(1);
  if (w.is_cpu()) {
    return ShiftedSumFunction::apply(w, flip, scale, layoutStrides({o, i, 4, 4}, channelsLast));
  }
  // A reduced-precision matrix would round the scale itself: it multiplies afterwards there.
  const bool reduced = w.scalar_type() == at::kBFloat16 || w.scalar_type() == at::kHalf;
  auto k = at::mm(w.reshape({o * i, 9}), cachedShiftedSumMatrix(flip, reduced ? 1.0 : scale, w.options())).view({o, i, 4, 4});
  if (reduced && scale != 1.0) k = k * scale;
  return channelsLast ? k.contiguous(at::MemoryFormat::ChannelsLast) : k;
}

}  // namespace progan
