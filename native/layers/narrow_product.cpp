#include "layers/narrow_product.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <type_traits>

#include "layers/vector_clones.h"

namespace progan {

namespace {

// Pixels per task and per register block: a task's accumulators (≤ 4 rows of kChunk) stay in L1.
constexpr int64_t kChunk = 256;
// Multiply-adds below which a call runs on one thread: waking the other costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 16;

int64_t grainFor(int64_t workPerTask) { return std::max<int64_t>(1, kParallelWork / std::max<int64_t>(1, workPerTask)); }

// The loops below are written for the compiler to vectorise across pixels with the narrow side's
// values in registers, in every clone (layers/vector_clones.h).

// Where an image's element (c, p) lies, p = h·W + w being its pixel: at c·channel + p·pixel from the
// image's start, for NCHW (pixel stride 1) and channels-last (channel stride 1) tensors alike.
struct Strides {
  int64_t channel, pixel;
};

// The loops' names say which side they vectorise along: the rows of an NCHW wide side (its pixels),
// or the pixels of a channels-last one (its channels). The narrow side is read or written with its
// own strides, whichever layout it has.

// out[a, p0 + i] = Σ_b m[a, b]·in[b, p0 + i] (+ bias[a]), i < len, for B ≤ kNarrowChannels input
// channels; out NCHW (its rows contiguous).
template <class T, int B>
[[gnu::always_inline]] inline void expandRows(const T* m, const T* bias, const T* in, Strides inAt, T* out, int64_t rows,
                                              int64_t pixels, int64_t p0, int64_t len) {
  T x[B][kChunk];
  for (int b = 0; b < B; ++b)
    for (int64_t i = 0; i < len; ++i) x[b][i] = in[b * inAt.channel + (p0 + i) * inAt.pixel];
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

// The same into a channels-last out (each pixel's `rows` outputs contiguous), from mT = mᵀ [B, rows].
template <class T, int B>
[[gnu::always_inline]] inline void expandPixels(const T* mT, const T* bias, const T* in, Strides inAt, T* out, int64_t rows,
                                                int64_t p0, int64_t len) {
  for (int64_t i = p0; i < p0 + len; ++i) {
    T x[B];
    for (int b = 0; b < B; ++b) x[b] = in[b * inAt.channel + i * inAt.pixel];
    T* o = out + i * rows;
    for (int64_t a = 0; a < rows; ++a) {
      T s = x[0] * mT[a];
      for (int b = 1; b < B; ++b) s += x[b] * mT[b * rows + a];
      o[a] = s + (bias ? bias[a] : T(0));
    }
  }
}

// out[a, p0 + i] = Σ_b m[a, b]·in[b, p0 + i] (+ bias[a]), i < len ≤ kChunk, for A ≤ kNarrowChannels
// output channels, from an NCHW in: one pass over the wide input.
template <class T, int A>
[[gnu::always_inline]] inline void contractRows(const T* m, const T* bias, const T* in, T* out, Strides outAt, int64_t depth,
                                                int64_t pixels, int64_t p0, int64_t len) {
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
    for (int64_t i = 0; i < len; ++i) out[a * outAt.channel + (p0 + i) * outAt.pixel] = acc[a][i] + shift;
  }
}

// Lanes of separate partial sums, so that a sum vectorises without reassociation.
constexpr int kLanes = 16;

// The same from a channels-last in (each pixel's `depth` inputs contiguous): one dot product of
// `depth` terms per pixel and output channel.
template <class T, int A>
[[gnu::always_inline]] inline void contractPixels(const T* m, const T* bias, const T* in, T* out, Strides outAt, int64_t depth,
                                                  int64_t p0, int64_t len) {
  const int64_t whole = depth - depth % kLanes;
  for (int64_t i = p0; i < p0 + len; ++i) {
    const T* x = in + i * depth;
    T acc[A][kLanes] = {};
    for (int64_t b = 0; b < whole; b += kLanes)
      for (int a = 0; a < A; ++a)
        for (int j = 0; j < kLanes; ++j) acc[a][j] += m[a * depth + b + j] * x[b + j];
    for (int64_t b = whole; b < depth; ++b)
      for (int a = 0; a < A; ++a) acc[a][b - whole] += m[a * depth + b] * x[b];
    for (int a = 0; a < A; ++a) {
      T sum = T(0);
      for (int j = 0; j < kLanes; ++j) sum += acc[a][j];
      out[a * outAt.channel + i * outAt.pixel] = sum + (bias ? bias[a] : T(0));
    }
  }
}

// dot[s] = Σ_n Σ_p wide[n, p]·narrow[n, s, p] for S ≤ kNarrowChannels narrow channels; `wide` is one
// channel's row of each NCHW image (image stride wideStride), `narrow` the narrow tensor (image
// stride narrowStride). `UnitPixel`: the narrow side is NCHW too, its pixel stride 1 known to the
// compiler, so that the loop vectorises with plain loads.
template <class T, int S, bool UnitPixel>
[[gnu::always_inline]] inline void dotRows(const T* wide, int64_t wideStride, const T* narrow, int64_t narrowStride,
                                           Strides narrowAt, int64_t images, int64_t pixels, T* dot) {
  if constexpr (UnitPixel) narrowAt.pixel = 1;
  T acc[S][kLanes] = {};
  const int64_t whole = pixels - pixels % kLanes;
  for (int64_t n = 0; n < images; ++n) {
    const T* w = wide + n * wideStride;
    const T* x = narrow + n * narrowStride;
    for (int64_t p = 0; p < whole; p += kLanes)
      for (int j = 0; j < kLanes; ++j)
        for (int s = 0; s < S; ++s) acc[s][j] += w[p + j] * x[s * narrowAt.channel + (p + j) * narrowAt.pixel];
    for (int64_t p = whole; p < pixels; ++p)
      for (int s = 0; s < S; ++s) acc[s][p - whole] += w[p] * x[s * narrowAt.channel + p * narrowAt.pixel];
  }
  for (int s = 0; s < S; ++s) {
    T sum = T(0);
    for (int j = 0; j < kLanes; ++j) sum += acc[s][j];
    dot[s] = sum;
  }
}

// Wide channels a task of gramPixels sums: its accumulators stay in registers.
constexpr int64_t kGramBlock = 64;

// dot[s·len + j] = Σ_n Σ_p wide[n, p, c0 + j]·narrow[n, s, p], j < len ≤ kGramBlock, for a
// channels-last wide tensor of `channels` channels (`wide` at its channel c0).
template <class T, int S>
[[gnu::always_inline]] inline void gramPixels(const T* wide, int64_t channels, const T* narrow, int64_t narrowStride,
                                              Strides narrowAt, int64_t images, int64_t pixels, int64_t len, T* dot) {
  T acc[S][kGramBlock] = {};
  for (int64_t n = 0; n < images; ++n)
    for (int64_t p = 0; p < pixels; ++p) {
      const T* w = wide + (n * pixels + p) * channels;
      for (int s = 0; s < S; ++s) {
        const T v = narrow[n * narrowStride + s * narrowAt.channel + p * narrowAt.pixel];
        for (int64_t j = 0; j < len; ++j) acc[s][j] += v * w[j];
      }
    }
  for (int s = 0; s < S; ++s)
    for (int64_t j = 0; j < len; ++j) dot[s * len + j] = acc[s][j];
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
PROGAN_VECTOR_CLONES void expandTask(const T* m, const T* bias, const T* in, Strides inAt, T* out, bool outPixelMajor, int64_t rows,
                                     int64_t narrow, int64_t pixels, int64_t p0, int64_t len) {
  withWidth(narrow, [&](auto b) __attribute__((always_inline)) {
    if (outPixelMajor)
      expandPixels<T, b()>(m, bias, in, inAt, out, rows, p0, len);
    else
      expandRows<T, b()>(m, bias, in, inAt, out, rows, pixels, p0, len);
  });
}
template <class T>
PROGAN_VECTOR_CLONES void contractTask(const T* m, const T* bias, const T* in, bool inPixelMajor, T* out, Strides outAt,
                                       int64_t narrow, int64_t depth, int64_t pixels, int64_t p0, int64_t len) {
  withWidth(narrow, [&](auto a) __attribute__((always_inline)) {
    if (inPixelMajor)
      contractPixels<T, a()>(m, bias, in, out, outAt, depth, p0, len);
    else
      contractRows<T, a()>(m, bias, in, out, outAt, depth, pixels, p0, len);
  });
}
template <class T>
PROGAN_VECTOR_CLONES void dotTask(const T* wide, int64_t wideStride, const T* narrow, int64_t narrowStride, Strides narrowAt,
                                  int64_t narrowRows, int64_t images, int64_t pixels, T* dot) {
  withWidth(narrowRows, [&](auto s) __attribute__((always_inline)) {
    if (narrowAt.pixel == 1)
      dotRows<T, s(), true>(wide, wideStride, narrow, narrowStride, narrowAt, images, pixels, dot);
    else
      dotRows<T, s(), false>(wide, wideStride, narrow, narrowStride, narrowAt, images, pixels, dot);
  });
}
template <class T>
PROGAN_VECTOR_CLONES void gramTask(const T* wide, int64_t channels, const T* narrow, int64_t narrowStride, Strides narrowAt,
                                   int64_t narrowRows, int64_t images, int64_t pixels, int64_t len, T* dot) {
  withWidth(narrowRows, [&](auto s) __attribute__((always_inline)) {
    gramPixels<T, s()>(wide, channels, narrow, narrowStride, narrowAt, images, pixels, len, dot);
  });
}

int64_t pixelsOf(const at::Tensor& t) { return t.size(2) * t.size(3); }

// t itself where it is NCHW or channels-last in memory, else an NCHW copy.
at::Tensor planar(const at::Tensor& t) {
  return t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast) ? t : t.contiguous();
}

// Whether a planar tensor is channels-last (its pixels' channels contiguous). Read from the layout,
// not the strides, which are arbitrary along dimensions of size 1; a tensor that is both (one
// channel or one pixel) counts as NCHW.
bool pixelMajor(const at::Tensor& t) { return !t.is_contiguous(); }

Strides stridesOf(const at::Tensor& t) {
  return pixelMajor(t) ? Strides{1, t.size(1)} : Strides{pixelsOf(t), 1};
}

}  // namespace

bool narrowFits(int64_t a, int64_t b, at::ScalarType type) {
  return (type == at::kFloat || type == at::kDouble) && std::min(a, b) <= kNarrowChannels;
}

at::Tensor narrowProduct(const at::Tensor& m, const at::Tensor& in, const std::optional<at::Tensor>& bias, bool channelsLast) {
  RECORD_FUNCTION("progan::narrowProduct", std::vector<c10::IValue>({in}));  // named in trainPhase({ profile })'s traces
  TORCH_CHECK(m.dim() == 2 && in.dim() == 4 && m.size(1) == in.size(1), "narrowProduct expects [A, B] and [N, B, H, W] but received ",
              m.sizes(), " and ", in.sizes());
  TORCH_CHECK(narrowFits(m.size(0), m.size(1), in.scalar_type()) && m.scalar_type() == in.scalar_type(),
              "narrowProduct needs float32 or float64 and a side of at most ", kNarrowChannels, " channels");
  TORCH_CHECK(!bias || bias->numel() == m.size(0), "narrowProduct: the bias must have one entry per output channel");
  const int64_t images = in.size(0), depth = in.size(1), rows = m.size(0), pixels = pixelsOf(in);
  const auto x = planar(in);
  const bool expands = depth <= kNarrowChannels;
  // An expanding product runs from the transposed matrix into a channels-last output.
  const auto k = expands && channelsLast ? m.t().contiguous() : m.contiguous();
  const auto shift = bias ? std::optional<at::Tensor>(bias->to(in.scalar_type()).contiguous()) : std::nullopt;
  auto out = at::empty({images, rows, in.size(2), in.size(3)},
                       in.options().memory_format(channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  const Strides inAt = stridesOf(x), outAt = stridesOf(out);
  const bool wideIsPixelMajor = pixelMajor(expands ? out : x);
  const int64_t chunks = (pixels + kChunk - 1) / kChunk;
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
          expandTask(kp, bp, xi, inAt, oi, wideIsPixelMajor, rows, depth, pixels, p0, len);
        else
          contractTask(kp, bp, xi, wideIsPixelMajor, oi, outAt, rows, depth, pixels, p0, len);
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
  const auto l = planar(left), r = planar(right);
  auto out = at::empty({rows, cols}, left.options());
  // The narrow side's values are read by every task; each task sums one channel (NCHW) or one block
  // of channels (channels-last) of the wide side.
  const bool leftNarrow = rows <= kNarrowChannels;
  const auto& wide = leftNarrow ? r : l;
  const auto& narrow = leftNarrow ? l : r;
  const int64_t wideChannels = wide.size(1), narrowRows = narrow.size(1);
  const Strides narrowAt = stridesOf(narrow);
  const int64_t narrowStride = narrowRows * pixels, wideStride = wideChannels * pixels;
  const auto store = [&](auto* op, int64_t s, int64_t c, auto value) { (leftNarrow ? op[s * cols + c] : op[c * cols + s]) = value; };
  AT_DISPATCH_FLOATING_TYPES(left.scalar_type(), "narrowGram", [&] {
    const scalar_t* wp = wide.const_data_ptr<scalar_t>();
    const scalar_t* np = narrow.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (!pixelMajor(wide)) {
      at::parallel_for(0, wideChannels, grainFor(narrowRows * images * pixels), [&](int64_t begin, int64_t end) {
        scalar_t dot[kNarrowChannels];
        for (int64_t c = begin; c < end; ++c) {
          dotTask(wp + c * pixels, wideStride, np, narrowStride, narrowAt, narrowRows, images, pixels, dot);
          for (int64_t s = 0; s < narrowRows; ++s) store(op, s, c, dot[s]);
        }
      });
      return;
    }
    const int64_t blocks = (wideChannels + kGramBlock - 1) / kGramBlock;
    at::parallel_for(0, blocks, grainFor(narrowRows * images * pixels * kGramBlock), [&](int64_t begin, int64_t end) {
      scalar_t dot[kNarrowChannels * kGramBlock];
      for (int64_t block = begin; block < end; ++block) {
        const int64_t c0 = block * kGramBlock, len = std::min(kGramBlock, wideChannels - c0);
        gramTask(wp + c0, wideChannels, np, narrowStride, narrowAt, narrowRows, images, pixels, len, dot);
        for (int64_t s = 0; s < narrowRows; ++s)
          for (int64_t j = 0; j < len; ++j) store(op, s, c0 + j, dot[s * len + j]);
      }
    });
  });
  return out;
}

}  // namespace progan
