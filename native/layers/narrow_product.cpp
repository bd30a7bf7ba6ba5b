#include "layers/narrow_product.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <type_traits>

namespace progan {

namespace {

// Pixels per task and per register block: a task's accumulators (≤ 4 rows of kChunk) stay in L1.
constexpr int64_t kChunk = 256;
// Multiply-adds below which a call runs on one thread: waking the other costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 16;

int64_t grainFor(int64_t workPerTask) { return std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, workPerTask)); }

// The loops below are written for the compiler to vectorise across pixels with the narrow side's
// values in registers. They are compiled three times (AVX-512, AVX2, baseline) and picked at load
// by what the CPU reports: a prebuilt addon runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PROGAN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PROGAN_VECTOR_CLONES
#endif

// out[a, p0 + i] = Σ_b m[a, b]·in[b, p0 + i] (+ bias[a]), i < len, for B ≤ kNarrowChannels input rows.
template <class T, int B>
[[gnu::always_inline]] inline void expandRows(const T* m, const T* bias, const T* in, T* out, int64_t rows, int64_t pixels,
                                              int64_t p0, int64_t len) {
  const T* x[B];
  for (int b = 0; b < B; ++b) x[b] = in + b * pixels + p0;
  for (int64_t a = 0; a < rows; ++a) {
    T w[B];
    for (int b = 0; b < B; ++b) w[b] = m[a * B + b];
    const T shift = bias ? bias[a] : T(0);
    T* o = out + a * pixels + p0;
    for (int64_t i = 0; i < len; ++i) {
      T s = w[0] * x[0][i];
      for (int b = 1; b < B; ++b) s += w[b] * x[b][i];
      o[i] = s + shift;
    }
  }
}

// out[a, p0 + i] = Σ_b m[a, b]·in[b, p0 + i] (+ bias[a]), i < len ≤ kChunk, for A ≤ kNarrowChannels
// output rows: one pass over the wide input.
template <class T, int A>
[[gnu::always_inline]] inline void contractRows(const T* m, const T* bias, const T* in, T* out, int64_t depth, int64_t pixels,
                                                int64_t p0, int64_t len) {
  T acc[A][kChunk];
  for (int a = 0; a < A; ++a)
    for (int64_t i = 0; i < len; ++i) acc[a][i] = T(0);
  for (int64_t b = 0; b < depth; ++b) {
    const T* x = in + b * pixels + p0;
    T w[A];
    for (int a = 0; a < A; ++a) w[a] = m[a * depth + b];
    for (int64_t i = 0; i < len; ++i)
      for (int a = 0; a < A; ++a) acc[a][i] += w[a] * x[i];
  }
  for (int a = 0; a < A; ++a) {
    const T shift = bias ? bias[a] : T(0);
    T* o = out + a * pixels + p0;
    for (int64_t i = 0; i < len; ++i) o[i] = acc[a][i] + shift;
  }
}

// dot[s] = Σ_n Σ_p wide[n, p]·narrow[n, s, p] for S ≤ kNarrowChannels narrow rows; `wide` is one
// channel's row of each image (image stride wideStride), `narrow` the narrow tensor's S rows.
template <class T, int S>
[[gnu::always_inline]] inline void dotRows(const T* wide, int64_t wideStride, const T* narrow, int64_t images, int64_t pixels,
                                           T* dot) {
  constexpr int kLanes = 16;  // separate partial sums, so the sum vectorises without reassociation
  T acc[S][kLanes] = {};
  const int64_t whole = pixels - pixels % kLanes;
  for (int64_t n = 0; n < images; ++n) {
    const T* w = wide + n * wideStride;
    const T* x = narrow + n * S * pixels;
    for (int64_t p = 0; p < whole; p += kLanes)
      for (int j = 0; j < kLanes; ++j)
        for (int s = 0; s < S; ++s) acc[s][j] += w[p + j] * x[s * pixels + p + j];
    for (int64_t p = whole; p < pixels; ++p)
      for (int s = 0; s < S; ++s) acc[s][p - whole] += w[p] * x[s * pixels + p];
  }
  for (int s = 0; s < S; ++s) {
    T sum = T(0);
    for (int j = 0; j < kLanes; ++j) sum += acc[s][j];
    dot[s] = sum;
  }
}

// Calls f(std::integral_constant<int, n>) for the narrow side's width n = 1 … kNarrowChannels, so
// that the loops above unroll over it.
template <class F>
[[gnu::always_inline]] inline void withWidth(int64_t n, const F& f) {
  switch (n) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

// The per-task entry points, each compiled for the vector units above (the lambdas are inlined
// into every clone).
template <class T>
PROGAN_VECTOR_CLONES void expandTask(const T* m, const T* bias, const T* in, T* out, int64_t rows, int64_t narrow, int64_t pixels,
                                     int64_t p0, int64_t len) {
  withWidth(narrow, [&](auto b) __attribute__((always_inline)) { expandRows<T, b()>(m, bias, in, out, rows, pixels, p0, len); });
}
template <class T>
PROGAN_VECTOR_CLONES void contractTask(const T* m, const T* bias, const T* in, T* out, int64_t narrow, int64_t depth,
                                       int64_t pixels, int64_t p0, int64_t len) {
  withWidth(narrow, [&](auto a) __attribute__((always_inline)) { contractRows<T, a()>(m, bias, in, out, depth, pixels, p0, len); });
}
template <class T>
PROGAN_VECTOR_CLONES void dotTask(const T* wide, int64_t wideStride, const T* narrow, int64_t narrowRows, int64_t images,
                                  int64_t pixels, T* dot) {
  withWidth(narrowRows, [&](auto s) __attribute__((always_inline)) { dotRows<T, s()>(wide, wideStride, narrow, images, pixels, dot); });
}

int64_t pixelsOf(const at::Tensor& t) { return t.size(2) * t.size(3); }

}  // namespace

bool narrowFits(int64_t a, int64_t b, at::ScalarType type) {
  return (type == at::kFloat || type == at::kDouble) && std::min(a, b) <= kNarrowChannels;
}

at::Tensor narrowProduct(const at::Tensor& m, const at::Tensor& in, const std::optional<at::Tensor>& bias) {
  RECORD_FUNCTION("progan::narrowProduct", std::vector<c10::IValue>({in}));  // named in trainPhase({ profile })'s traces
  TORCH_CHECK(m.dim() == 2 && in.dim() == 4 && m.size(1) == in.size(1), "narrowProduct expects [A, B] and [N, B, H, W] but received ",
              m.sizes(), " and ", in.sizes());
  TORCH_CHECK(narrowFits(m.size(0), m.size(1), in.scalar_type()) && m.scalar_type() == in.scalar_type(),
              "narrowProduct needs float32 or float64 and a side of at most ", kNarrowChannels, " channels");
  TORCH_CHECK(!bias || bias->numel() == m.size(0), "narrowProduct: the bias must have one entry per output channel");
  const int64_t images = in.size(0), depth = in.size(1), rows = m.size(0), pixels = pixelsOf(in);
  const auto x = in.contiguous(), k = m.contiguous();
  const auto shift = bias ? std::optional<at::Tensor>(bias->to(in.scalar_type()).contiguous()) : std::nullopt;
  auto out = at::empty({images, rows, in.size(2), in.size(3)}, in.options());
  const int64_t chunks = (pixels + kChunk - 1) / kChunk;
  const bool expands = depth <= kNarrowChannels;
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "narrowProduct", [&] {
    const scalar_t* kp = k.const_data_ptr<scalar_t>();
    const scalar_t* bp = shift ? shift->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, images * chunks, grainFor(rows * depth * std::min(pixels, kChunk)), [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / chunks, p0 = (task % chunks) * kChunk, len = std::min(kChunk, pixels - p0);
        const scalar_t* xi = xp + n * depth * pixels;
        scalar_t* oi = op + n * rows * pixels;
        if (expands)
          expandTask(kp, bp, xi, oi, rows, depth, pixels, p0, len);
        else
          contractTask(kp, bp, xi, oi, rows, depth, pixels, p0, len);
      }
    });
  });
  return out;
}

at::Tensor narrowGram(const at::Tensor& left, const at::Tensor& right) {
  RECORD_FUNCTION("progan::narrowGram", std::vector<c10::IValue>({left, right}));
  TORCH_CHECK(left.dim() == 4 && right.dim() == 4 && left.size(0) == right.size(0) && left.size(2) == right.size(2) &&
                  left.size(3) == right.size(3),
              "narrowGram expects [N, A, H, W] and [N, B, H, W] but received ", left.sizes(), " and ", right.sizes());
  TORCH_CHECK(narrowFits(left.size(1), right.size(1), left.scalar_type()) && right.scalar_type() == left.scalar_type(),
              "narrowGram needs float32 or float64 and a side of at most ", kNarrowChannels, " channels");
  const int64_t images = left.size(0), rows = left.size(1), cols = right.size(1), pixels = pixelsOf(left);
  const auto l = left.contiguous(), r = right.contiguous();
  auto out = at::empty({rows, cols}, left.options());
  // The narrow side's rows are read by every task; each task sums one channel of the wide side.
  const bool leftNarrow = rows <= kNarrowChannels;
  const auto& wide = leftNarrow ? r : l;
  const auto& narrow = leftNarrow ? l : r;
  const int64_t wideChannels = wide.size(1), narrowRows = narrow.size(1);
  AT_DISPATCH_FLOATING_TYPES(left.scalar_type(), "narrowGram", [&] {
    const scalar_t* wp = wide.const_data_ptr<scalar_t>();
    const scalar_t* np = narrow.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, wideChannels, grainFor(narrowRows * images * pixels), [&](int64_t begin, int64_t end) {
      scalar_t dot[kNarrowChannels];
      for (int64_t c = begin; c < end; ++c) {
        dotTask(wp + c * pixels, wideChannels * pixels, np, narrowRows, images, pixels, dot);
        for (int64_t s = 0; s < narrowRows; ++s) (leftNarrow ? op[s * cols + c] : op[c * cols + s]) = dot[s];
      }
    });
  });
  return out;
}

}  // namespace progan
