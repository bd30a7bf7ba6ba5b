#include "layers/winograd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <iterator>
#include <list>
#include <mutex>
#include <vector>

#include "layers/vector_clones.h"

namespace progan {

namespace {

// Where ξ = (r, s) of the transform domain lives in a [16, P, C] buffer. Mirroring the 3×3 kernel
// (backward-data) swaps the rows 0 and 3 of G, so the mirrored kernel's point ξ is the stored
// kernel's point (π r, π s) with π = (3 1 2 0).
int64_t slot(int64_t k, bool mirrored) {
  if (!mirrored) return k;
  constexpr int64_t pi[4] = {3, 1, 2, 0};
  return pi[k / 4] * 4 + pi[k % 4];
}

struct Tiling {
  int64_t n, h, w, tilesH, tilesW, tiles;
  Tiling(int64_t n, int64_t h, int64_t w) : n(n), h(h), w(w), tilesH((h + 1) / 2), tilesW((w + 1) / 2), tiles(n * tilesH * tilesW) {}
  // Image, tile row and tile column of tile p.
  void locate(int64_t p, int64_t& image, int64_t& row, int64_t& col) const {
    col = p % tilesW;
    row = (p / tilesW) % tilesH;
    image = p / (tilesW * tilesH);
  }
};

// Tiles per parallel_for chunk: enough work to amortise the chunk, enough chunks to share.
int64_t grainFor(int64_t channels) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(channels, 1)); }

// One tile of each transform, for every channel: channels are contiguous (NHWC images, [16, P, C]
// buffers), so the loop over them is what vectorises; the pointers never alias.

// out_ξ = (Bᵀ d B)_ξ. Bᵀ rows: (1 0 −1 0), (0 1 1 0), (0 −1 1 0), (0 1 0 −1).
template <typename T>
PROGAN_VECTOR_CLONES void inputTile(const T* const* d, T* const* out, int64_t channels) {
#pragma GCC ivdep
  for (int64_t c = 0; c < channels; ++c) {
    T m[16];
    for (int s = 0; s < 4; ++s) {
      m[0 + s] = d[0 + s][c] - d[8 + s][c];
      m[4 + s] = d[4 + s][c] + d[8 + s][c];
      m[8 + s] = d[8 + s][c] - d[4 + s][c];
      m[12 + s] = d[4 + s][c] - d[12 + s][c];
    }
    for (int r = 0; r < 16; r += 4) {
      out[r + 0][c] = m[r + 0] - m[r + 2];
      out[r + 1][c] = m[r + 1] + m[r + 2];
      out[r + 2][c] = m[r + 2] - m[r + 1];
      out[r + 3][c] = m[r + 1] - m[r + 3];
    }
  }
}

// out (2×2) = Aᵀ m A. Aᵀ rows: (1 1 1 0), (0 1 −1 −1).
template <typename T>
PROGAN_VECTOR_CLONES void outputTile(const T* const* m, T* const* out, int64_t channels) {
#pragma GCC ivdep
  for (int64_t c = 0; c < channels; ++c) {
    T u[8];
    for (int s = 0; s < 4; ++s) {
      u[0 + s] = m[0 + s][c] + m[4 + s][c] + m[8 + s][c];
      u[4 + s] = m[4 + s][c] - m[8 + s][c] - m[12 + s][c];
    }
    for (int r = 0; r < 2; ++r) {
      out[2 * r + 0][c] = u[4 * r + 0] + u[4 * r + 1] + u[4 * r + 2];
      out[2 * r + 1][c] = u[4 * r + 1] - u[4 * r + 2] - u[4 * r + 3];
    }
  }
}

// The adjoint of outputTile: out_ξ = (A g Aᵀ)_ξ for the 2×2 g. A rows: (1 0), (1 1), (1 −1), (0 −1).
template <typename T>
PROGAN_VECTOR_CLONES void outputGradTile(const T* const* g, T* const* out, int64_t channels) {
#pragma GCC ivdep
  for (int64_t c = 0; c < channels; ++c) {
    T u[8];  // u[r][s] = Σ_a A[r][a] g[a][s], r < 4, s < 2
    for (int s = 0; s < 2; ++s) {
      u[0 + s] = g[0 + s][c];
      u[2 + s] = g[0 + s][c] + g[2 + s][c];
      u[4 + s] = g[0 + s][c] - g[2 + s][c];
      u[6 + s] = -g[2 + s][c];
    }
    for (int r = 0; r < 4; ++r) {
      out[4 * r + 0][c] = u[2 * r + 0];
      out[4 * r + 1][c] = u[2 * r + 0] + u[2 * r + 1];
      out[4 * r + 2][c] = u[2 * r + 0] - u[2 * r + 1];
      out[4 * r + 3][c] = -u[2 * r + 1];
    }
  }
}

// V[ξ, p, c] = (Bᵀ d B)_ξ for the 4×4 tile d of image x (NHWC, zero outside) whose top-left corner
// is (2i − 1, 2j − 1). Bᵀ rows: (1 0 −1 0), (0 1 1 0), (0 −1 1 0), (0 1 0 −1).
template <typename T>
void inputTransform(const T* x, T* v, int64_t planeStride, const Tiling& t, int64_t channels, bool mirrored) {
  const std::vector<T> zeros(channels, T(0));
  at::parallel_for(0, t.tiles, grainFor(channels), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      int64_t image, row, col;
      t.locate(p, image, row, col);
      const T* d[16];
      T* dst[16];
      for (int64_t k = 0; k < 16; ++k) {
        const int64_t y = 2 * row - 1 + k / 4, xx = 2 * col - 1 + k % 4;
        d[k] = (y >= 0 && y < t.h && xx >= 0 && xx < t.w) ? x + ((image * t.h + y) * t.w + xx) * channels : zeros.data();
        dst[k] = v + slot(k, mirrored) * planeStride + p * channels;
      }
      inputTile(d, dst, channels);
    }
  });
}

// y (NHWC) tile p = Aᵀ m A for the 4×4 m = M[·, p, c], the outputs outside the image dropped.
// Aᵀ rows: (1 1 1 0), (0 1 −1 −1).
template <typename T>
void outputTransform(const T* m, int64_t planeStride, T* y, const Tiling& t, int64_t channels, bool mirrored) {
  at::parallel_for(0, t.tiles, grainFor(channels), [&](int64_t begin, int64_t end) {
    std::vector<T> discard(channels);  // outputs past the image's edge
    for (int64_t p = begin; p < end; ++p) {
      int64_t image, row, col;
      t.locate(p, image, row, col);
      const T* src[16];
      for (int64_t k = 0; k < 16; ++k) src[k] = m + slot(k, mirrored) * planeStride + p * channels;
      T* dst[4];
      for (int64_t k = 0; k < 4; ++k) {
        const int64_t yy = 2 * row + k / 2, xx = 2 * col + k % 2;
        dst[k] = (yy < t.h && xx < t.w) ? y + ((image * t.h + yy) * t.w + xx) * channels : discard.data();
      }
      outputTile(src, dst, channels);
    }
  });
}

// The adjoint of outputTransform: M[ξ, p, c] = (A g Aᵀ)_ξ for the 2×2 tile g of the output
// gradient (NHWC, zero outside the image). A rows: (1 0), (1 1), (1 −1), (0 −1).
template <typename T>
void outputGradTransform(const T* g, T* m, int64_t planeStride, const Tiling& t, int64_t channels) {
  const std::vector<T> zeros(channels, T(0));
  at::parallel_for(0, t.tiles, grainFor(channels), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      int64_t image, row, col;
      t.locate(p, image, row, col);
      const T* src[4];
      for (int64_t k = 0; k < 4; ++k) {
        const int64_t yy = 2 * row + k / 2, xx = 2 * col + k % 2;
        src[k] = (yy < t.h && xx < t.w) ? g + ((image * t.h + yy) * t.w + xx) * channels : zeros.data();
      }
      T* dst[16];
      for (int64_t k = 0; k < 16; ++k) dst[k] = m + k * planeStride + p * channels;
      outputGradTile(src, dst, channels);
    }
  });
}

// The kernel transforms work on blocks of kBlock output × kBlock input channels, so that both the
// kernel [O, C, 3, 3] and the 16 planes of U [16, C, O] are read and written in contiguous runs:
// one plane is C·O elements from the next, and element-wise strided access thrashes the TLB
// (16 ms for a 512×512 kernel, 0.5 ms blocked).
constexpr int64_t kBlock = 32;
// The block's 16 planes, a cache line apart beyond their size for the same reason as
// transformBuffer's.
constexpr int64_t kBlockPlane = kBlock * kBlock + 16;

// U[ξ, c, o] = (G w[o, c] Gᵀ)_ξ, or with `transposed` its planes transposed, U[ξ, o, c] (what the
// input gradient multiplies by). G rows: (1 0 0), (½ ½ ½), (½ −½ ½), (0 0 1).
template <typename T>
void kernelTransform(const T* w, T* u, int64_t outChannels, int64_t inChannels, bool transposed) {
  const int64_t plane = inChannels * outChannels, inBlocks = (inChannels + kBlock - 1) / kBlock;
  const int64_t outBlocks = (outChannels + kBlock - 1) / kBlock;
  at::parallel_for(0, inBlocks * outBlocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> block(16 * kBlockPlane);  // [ξ][c][o] of this block, or [ξ][o][c]
    for (int64_t b = begin; b < end; ++b) {
      const int64_t c0 = (b / outBlocks) * kBlock, o0 = (b % outBlocks) * kBlock;
      const int64_t cs = std::min(kBlock, inChannels - c0), os = std::min(kBlock, outChannels - o0);
      for (int64_t j = 0; j < os; ++j) {
        for (int64_t i = 0; i < cs; ++i) {
          const T* k = w + ((o0 + j) * inChannels + c0 + i) * 9;
          T mid[4][3];
          for (int s = 0; s < 3; ++s) {
            mid[0][s] = k[s];
            mid[1][s] = T(0.5) * (k[s] + k[3 + s] + k[6 + s]);
            mid[2][s] = T(0.5) * (k[s] - k[3 + s] + k[6 + s]);
            mid[3][s] = k[6 + s];
          }
          T* dst = block.data() + (transposed ? j * kBlock + i : i * kBlock + j);
          for (int r = 0; r < 4; ++r) {
            dst[(4 * r + 0) * kBlockPlane] = mid[r][0];
            dst[(4 * r + 1) * kBlockPlane] = T(0.5) * (mid[r][0] + mid[r][1] + mid[r][2]);
            dst[(4 * r + 2) * kBlockPlane] = T(0.5) * (mid[r][0] - mid[r][1] + mid[r][2]);
            dst[(4 * r + 3) * kBlockPlane] = mid[r][2];
          }
        }
      }
      for (int k = 0; k < 16; ++k) {
        if (transposed) {
          for (int64_t j = 0; j < os; ++j)
            std::copy_n(block.data() + k * kBlockPlane + j * kBlock, cs, u + k * plane + (o0 + j) * inChannels + c0);
        } else {
          for (int64_t i = 0; i < cs; ++i)
            std::copy_n(block.data() + k * kBlockPlane + i * kBlock, os, u + k * plane + (c0 + i) * outChannels + o0);
        }
      }
    }
  });
}

// The adjoint of kernelTransform: gw[o, c] = Gᵀ dU[·, c, o] G.
template <typename T>
void kernelGradTransform(const T* du, int64_t plane, T* gw, int64_t outChannels, int64_t inChannels) {
  const int64_t inBlocks = (inChannels + kBlock - 1) / kBlock;
  const int64_t outBlocks = (outChannels + kBlock - 1) / kBlock;
  at::parallel_for(0, inBlocks * outBlocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> block(16 * kBlockPlane);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t c0 = (b / outBlocks) * kBlock, o0 = (b % outBlocks) * kBlock;
      const int64_t cs = std::min(kBlock, inChannels - c0), os = std::min(kBlock, outChannels - o0);
      for (int k = 0; k < 16; ++k)
        for (int64_t i = 0; i < cs; ++i)
          std::copy_n(du + k * plane + (c0 + i) * outChannels + o0, os, block.data() + k * kBlockPlane + i * kBlock);
      for (int64_t j = 0; j < os; ++j) {
        for (int64_t i = 0; i < cs; ++i) {
          const T* src = block.data() + i * kBlock + j;
          T mid[3][4];
          for (int s = 0; s < 4; ++s) {
            const T u0 = src[s * kBlockPlane], u1 = src[(4 + s) * kBlockPlane];
            const T u2 = src[(8 + s) * kBlockPlane], u3 = src[(12 + s) * kBlockPlane];
            mid[0][s] = u0 + T(0.5) * (u1 + u2);
            mid[1][s] = T(0.5) * (u1 - u2);
            mid[2][s] = T(0.5) * (u1 + u2) + u3;
          }
          T* dst = gw + ((o0 + j) * inChannels + c0 + i) * 9;
          for (int a = 0; a < 3; ++a) {
            dst[3 * a + 0] = mid[a][0] + T(0.5) * (mid[a][1] + mid[a][2]);
            dst[3 * a + 1] = T(0.5) * (mid[a][1] - mid[a][2]);
            dst[3 * a + 2] = T(0.5) * (mid[a][1] + mid[a][2]) + mid[a][3];
          }
        }
      }
    }
  });
}

// A [16, tiles, C] buffer of the transform domain. Its 16 planes are each read or written once per
// tile, so their starts must not share cache sets: a plane of 256 tiles × 512 channels is 512 KiB,
// and 16 streams that far apart evict each other from an 8-way L1 (the transforms ran 2× slower).
// One cache line of padding per plane shifts each to its own sets.
at::Tensor transformBuffer(int64_t tiles, int64_t channels, const at::TensorOptions& options) {
  const int64_t stride = tiles * channels + 64 / int64_t(options.dtype().itemsize());
  return at::empty({16 * stride}, options).as_strided({16, tiles, channels}, {stride, channels, 1});
}

// The blocks of one matrix-kernel call: up to kProductRows rows of a by kProductColumns columns of
// b. Narrow column blocks keep b's panel in cache while the rows stream past it: [16, 256, 512] ×
// [16, 512, 512] on 2 threads ran at 366–385 GFLOP/s so, 250–270 with whole rows of b, and 328 in
// oneDNN's batched product (AMD EPYC, AVX-512). A column-major a is transposed kProductTransposed
// rows by kProductDepth columns at a time, into a buffer that stays in cache.
constexpr int64_t kProductRows = 256;
constexpr int64_t kProductColumns = 32;
constexpr int64_t kProductTransposed = 64;
constexpr int64_t kProductDepth = 512;

// rows[r][d] = column[d][r] for r < count, d < depth, where column d starts ld floats after column
// d − 1. In 8×8 tiles that stay in L1: 9× faster than column by column, whose writes a row apart
// missed the cache (a [256, 512] plane: 37 against 324 µs on one core).
PROGAN_VECTOR_CLONES void transposeBlock(const float* column, int64_t ld, int64_t count, int64_t depth, float* rows) {
  constexpr int64_t kTile = 8;
  for (int64_t d0 = 0; d0 < depth; d0 += kTile) {
    for (int64_t r0 = 0; r0 < count; r0 += kTile) {
      if (d0 + kTile <= depth && r0 + kTile <= count) {
        float tile[kTile][kTile];
        for (int64_t d = 0; d < kTile; ++d)
          for (int64_t r = 0; r < kTile; ++r) tile[d][r] = column[(d0 + d) * ld + r0 + r];
        for (int64_t r = 0; r < kTile; ++r)
          for (int64_t d = 0; d < kTile; ++d) rows[(r0 + r) * depth + d0 + d] = tile[d][r];
        continue;
      }
      for (int64_t d = d0; d < std::min(d0 + kTile, depth); ++d)
        for (int64_t r = r0; r < std::min(r0 + kTile, count); ++r) rows[r * depth + d] = column[d * ld + r];
    }
  }
}

// out[ξ] = a[ξ]·b[ξ] (plus out[ξ] when `accumulate`) for the 16 planes of the transform domain:
// a [16, m, k] with row-major planes or column-major ones (a transposed view), b [16, k, n] and out
// [16, m, n] with row-major planes; rows may be padded (transformBuffer).
//
// float32 runs oneDNN's matrix micro-kernel (at::native::cpublas::brgemm, AVX-512 or AVX2, MKL's
// product on CPUs without either) on blocks shared across threads by at::parallel_for: it reads
// each operand where it lies. oneDNN's batched product (mkldnn_matmul), which these products ran on
// before, copied every operand that was not contiguous as a whole, which the padded planes and the
// transposed ones never are: ~60 ms of a ~470 ms paper 8² step. Other types: ATen's batched product.
void planeProducts(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate) {
  TORCH_CHECK(b.stride(2) == 1 && out.stride(2) == 1, "planeProducts: b and out need row-major planes");
  if (a.scalar_type() != at::kFloat) {
    if (accumulate) {
      out.add_(at::bmm(a, b));
    } else {
      at::bmm_out(const_cast<at::Tensor&>(out), a, b);
    }
    return;
  }
  const bool aRowMajor = a.stride(2) == 1;
  TORCH_CHECK(aRowMajor || a.stride(1) == 1, "planeProducts: a needs row-major or column-major planes");
  const int64_t planes = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  const int64_t lda = aRowMajor ? a.stride(1) : a.stride(2), ldb = b.stride(1), ldc = out.stride(1);
  const float* aData = a.const_data_ptr<float>();
  const float* bData = b.const_data_ptr<float>();
  float* outData = out.mutable_data_ptr<float>();
  using at::native::cpublas::brgemm;
  if (aRowMajor) {
    const int64_t columnBlocks = (n + kProductColumns - 1) / kProductColumns;
    at::parallel_for(0, planes * columnBlocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t plane = task / columnBlocks, c0 = (task % columnBlocks) * kProductColumns;
        const int64_t columns = std::min(kProductColumns, n - c0);
        const float* aPlane = aData + plane * a.stride(0);
        const float* bPanel = bData + plane * b.stride(0) + c0;
        float* outPanel = outData + plane * out.stride(0) + c0;
        for (int64_t r0 = 0; r0 < m; r0 += kProductRows)
          brgemm(std::min(kProductRows, m - r0), columns, k, lda, ldb, ldc, accumulate, aPlane + r0 * lda, bPanel, outPanel + r0 * ldc);
      }
    });
    return;
  }
  const int64_t rowBlocks = (m + kProductTransposed - 1) / kProductTransposed;
  at::parallel_for(0, planes * rowBlocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> rows(kProductTransposed * std::min(kProductDepth, k));  // a's block, row-major
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / rowBlocks, r0 = (task % rowBlocks) * kProductTransposed;
      const int64_t count = std::min(kProductTransposed, m - r0);
      const float* aPlane = aData + plane * a.stride(0);
      float* outRows = outData + plane * out.stride(0) + r0 * ldc;
      for (int64_t d0 = 0; d0 < k; d0 += kProductDepth) {
        const int64_t depth = std::min(kProductDepth, k - d0);
        transposeBlock(aPlane + d0 * lda + r0, lda, count, depth, rows.data());
        const float* bRows = bData + plane * b.stride(0) + d0 * ldb;
        for (int64_t c0 = 0; c0 < n; c0 += kProductColumns)
          brgemm(count, std::min(kProductColumns, n - c0), depth, depth, ldb, ldc, accumulate || d0 > 0, rows.data(), bRows + c0,
                 outRows + c0);
      }
    }
  });
}

// Images per pass through the transform domain: the [16, tiles, C] buffers stay at a few MB (D's
// 32 reals and fakes at 8² and 512 channels: 16 MB) instead of growing with batch and image size
// (paper 64², 256 channels, batch 16: 268 MB each). 256+ tiles per pass keep the products large.
int64_t imagesPerPass(const Tiling& whole, int64_t channels) {
  constexpr int64_t kBufferBytes = int64_t(16) << 20;
  const int64_t perImage = 16 * (whole.tiles / whole.n) * channels * int64_t(sizeof(float));
  return std::clamp<int64_t>(kBufferBytes / std::max<int64_t>(perImage, 1), 1, whole.n);
}

// Calls pass(first image, Tiling of the pass) for each batch slice of imagesPerPass images.
template <typename Pass>
void forEachPass(const Tiling& whole, int64_t channels, Pass pass) {
  const int64_t step = imagesPerPass(whole, channels);
  for (int64_t i = 0; i < whole.n; i += step) pass(i, Tiling(std::min(step, whole.n - i), whole.h, whole.w));
}

// Rows of the transposed images per parallel task.
constexpr int64_t kRelayoutRows = 64;

// dst image i = src image i transposed, for `images` [a, b] matrices ([b, a] each in dst), in 8×8
// tiles (transposeBlock): the NCHW ↔ NHWC relayouts around the transforms, ~2× faster than ATen's
// strided copy (46 µs for 16×128×8×8).
void transposeImages(const float* src, float* dst, int64_t images, int64_t a, int64_t b) {
  const int64_t chunks = (b + kRelayoutRows - 1) / kRelayoutRows;
  at::parallel_for(0, images * chunks, std::max<int64_t>(1, 32768 / (kRelayoutRows * a)), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t image = task / chunks, r0 = (task % chunks) * kRelayoutRows;
      transposeBlock(src + image * a * b + r0, b, std::min(kRelayoutRows, b - r0), a, dst + image * a * b + r0 * a);
    }
  });
}

// t [N, C, H, W] as NHWC images: a view where t is channels-last already.
at::Tensor channelsLast(const at::Tensor& t) {
  const auto nhwc = t.permute({0, 2, 3, 1});
  if (nhwc.is_contiguous() || t.scalar_type() != at::kFloat || !t.is_contiguous()) return nhwc.contiguous();
  auto out = at::empty(nhwc.sizes(), t.options());
  transposeImages(t.const_data_ptr<float>(), out.mutable_data_ptr<float>(), t.size(0), t.size(1), t.size(2) * t.size(3));
  return out;
}

// NHWC images y [N, H, W, C] → a contiguous NCHW tensor, the inverse of channelsLast.
at::Tensor channelsFirst(const at::Tensor& y) {
  const auto nchw = y.permute({0, 3, 1, 2});
  if (y.scalar_type() != at::kFloat || !y.is_contiguous()) return nchw.contiguous();
  auto out = at::empty(nchw.sizes(), y.options());
  transposeImages(y.const_data_ptr<float>(), out.mutable_data_ptr<float>(), y.size(0), y.size(1) * y.size(2), y.size(3));
  return out;
}

bool isChannelsLast(const at::Tensor& t) { return t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous(); }

// NHWC images → V [16, tiles, C].
at::Tensor transformInput(const at::Tensor& nhwc, const Tiling& t, bool mirrored) {
  const int64_t channels = nhwc.size(3);
  auto v = transformBuffer(t.tiles, channels, nhwc.options());
  AT_DISPATCH_FLOATING_TYPES(nhwc.scalar_type(), "winogradInputTransform", [&] {
    inputTransform(nhwc.const_data_ptr<scalar_t>(), v.mutable_data_ptr<scalar_t>(), v.stride(0), t, channels, mirrored);
  });
  return v;
}

// M [16, tiles, C] (a transformBuffer) → the NHWC images `y`.
void transformOutput(const at::Tensor& m, const Tiling& t, bool mirrored, const at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "winogradOutputTransform", [&] {
    outputTransform(m.const_data_ptr<scalar_t>(), m.stride(0), y.mutable_data_ptr<scalar_t>(), t, m.size(2), mirrored);
  });
}

// The convolution of x by the transformed kernel u [16, C, O] (or [16, O, C], transposed), pass by
// pass over the batch, in x's layout: a channels-last x is the NHWC the transforms read, and the
// NHWC they write is a channels-last result.
at::Tensor convolveTransformed(const at::Tensor& x, const at::Tensor& u, bool mirrored) {
  const Tiling whole(x.size(0), x.size(2), x.size(3));
  const int64_t outChannels = u.size(2);
  const auto xl = channelsLast(x);
  auto y = at::empty({whole.n, whole.h, whole.w, outChannels}, x.options());
  forEachPass(whole, std::max(x.size(1), outChannels), [&](int64_t i, const Tiling& t) {
    const auto v = transformInput(xl.narrow(0, i, t.n), t, mirrored);
    const auto m = transformBuffer(t.tiles, outChannels, x.options());
    planeProducts(v, u, m, /*accumulate=*/false);
    transformOutput(m, t, mirrored, y.narrow(0, i, t.n));
  });
  return isChannelsLast(x) ? y.permute({0, 3, 1, 2}) : channelsFirst(y);
}

at::Tensor computeKernelTransform(const at::Tensor& w, bool transposed) {
  const auto wc = w.contiguous();
  const int64_t out = wc.size(0), in = wc.size(1);
  auto u = transposed ? at::empty({16, out, in}, wc.options()) : at::empty({16, in, out}, wc.options());
  AT_DISPATCH_FLOATING_TYPES(wc.scalar_type(), "winogradKernelTransform", [&] {
    kernelTransform(wc.const_data_ptr<scalar_t>(), u.mutable_data_ptr<scalar_t>(), out, in, transposed);
  });
  return u;
}

// The transformed kernels of the weights in use. A weight serves 4–6 convolutions of a training
// step (D's forward, the penalty's input gradient and its double backward, the final backward;
// G's forward and backward) and its transform is 1.8× its size: 17 MB and 3 ms at 512×512, as much
// as the activations' transforms at 8². An entry is valid while its weight is alive with the same
// version (every in-place update bumps it; adam.cpp bumps it after fused Adam). The entry holds its
// weight weakly: a layer that scales its weight before the convolution passes a fresh tensor each
// forward, which dies with that forward's graph, and its entry goes with it at the next lookup.
// Holding those weights strongly kept up to the cap of dead entries and their weights alive: 310 MB
// more peak RSS at paper 32², 510 MB at 64². The input gradient multiplies by the transposed
// planes, which the matrix kernel takes only as a separate row-major transform: a second entry.
class KernelTransformCache {
 public:
  at::Tensor get(const at::Tensor& w, bool transposed) {
    if (w.is_inference()) return computeKernelTransform(w, transposed);  // no version counter to key on
    const auto version = w._version();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->weight.expired()) {
          it = erase(it);
          continue;
        }
        if (!sameTensor(*it, w) || it->transposed != transposed) {
          ++it;
          continue;
        }
        if (it->version == version) {
          entries_.splice(entries_.begin(), entries_, it);  // most recently used first
          return it->transform;
        }
        erase(it);  // an older version of this weight
        break;
      }
    }
    auto transform = computeKernelTransform(w, transposed);
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_front({Weak(w.getIntrusivePtr()), w.sizes().vec(), w.strides().vec(), w.scalar_type(), transposed, version, transform});
    bytes_ += transform.nbytes();
    while (bytes_ > kBytes && entries_.size() > 1) erase(std::prev(entries_.end()));
    return transform;
  }

 private:
  // Room for every 512-channel 3×3 kernel of G and D at 8² in both layouts (6 of them, 17 MB each
  // per layout), or one layout of each up to 32² (14); beyond, the least recently used is recomputed.
  static constexpr size_t kBytes = size_t(256) << 20;
  using Weak = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;
  struct Entry {
    Weak weight;  // keeps the TensorImpl's address from being reused while the entry exists
    std::vector<int64_t> sizes, strides;
    at::ScalarType type;
    bool transposed;
    int64_t version;
    at::Tensor transform;
  };
  static bool sameTensor(const Entry& e, const at::Tensor& w) {
    return e.weight._unsafe_get_target() == w.unsafeGetTensorImpl() && w.sizes() == e.sizes && w.strides() == e.strides &&
           w.scalar_type() == e.type;
  }
  std::list<Entry>::iterator erase(std::list<Entry>::iterator it) {
    bytes_ -= it->transform.nbytes();
    return entries_.erase(it);
  }
  std::mutex mutex_;
  std::list<Entry> entries_;
  size_t bytes_ = 0;
};

at::Tensor transformKernel(const at::Tensor& w, bool transposed) {
  static KernelTransformCache cache;
  return cache.get(w, transposed);
}

}  // namespace

bool winogradFits(const at::Tensor& x, const at::Tensor& w) {
  const auto type = x.scalar_type();
  return x.device().is_cpu() && w.device().is_cpu() && (type == at::kFloat || type == at::kDouble) &&
         w.scalar_type() == type && x.dim() == 4 && w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3 &&
         x.size(1) == w.size(1) && x.numel() > 0 && w.numel() > 0;
}

bool winogradPreferred(const at::Tensor& x, const at::Tensor& w) {
  return winogradFits(x, w) && x.scalar_type() == at::kFloat && w.size(0) >= 128 && w.size(1) >= 128;
}

at::Tensor winogradConvolution(const at::Tensor& x, const at::Tensor& w) {
  return convolveTransformed(x, transformKernel(w, /*transposed=*/false), /*mirrored=*/false);
}

at::Tensor winogradInputGrad(const at::Tensor& gradOut, const at::Tensor& w) {
  // conv(gO, w mirrored, channels swapped): its kernel transform at ξ is U[πξ]ᵀ, so the output
  // gradient's tiles are stored at πξ, multiplied by U[ξ]ᵀ, and read back from πξ.
  return convolveTransformed(gradOut, transformKernel(w, /*transposed=*/true), /*mirrored=*/true);
}

at::Tensor winogradWeightGrad(const at::Tensor& x, const at::Tensor& gradOut) {
  const Tiling whole(x.size(0), x.size(2), x.size(3));
  const int64_t outChannels = gradOut.size(1), inChannels = x.size(1);
  const auto xl = channelsLast(x), gl = channelsLast(gradOut);
  // Σ over passes of Vᵀ·M: each pass after the first adds its products to du.
  auto du = at::empty({16, inChannels, outChannels}, x.options());
  forEachPass(whole, std::max(inChannels, outChannels), [&](int64_t i, const Tiling& t) {
    const auto v = transformInput(xl.narrow(0, i, t.n), t, /*mirrored=*/false);
    auto m = transformBuffer(t.tiles, outChannels, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "winogradOutputGradTransform", [&] {
      outputGradTransform(gl.narrow(0, i, t.n).const_data_ptr<scalar_t>(), m.mutable_data_ptr<scalar_t>(), m.stride(0), t, outChannels);
    });
    planeProducts(v.transpose(1, 2), m, du, /*accumulate=*/i > 0);
  });
  auto gw = at::empty({outChannels, inChannels, 3, 3}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "winogradKernelGradTransform", [&] {
    kernelGradTransform(du.const_data_ptr<scalar_t>(), du.stride(0), gw.mutable_data_ptr<scalar_t>(), outChannels, inChannels);
  });
  return gw;
}

}  // namespace progan
