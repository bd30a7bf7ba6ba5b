// CUDA kernels of the pixel norm (pixel_norm.h), forward and backward, on the current stream.
// Channels inner (channels-last, and the 2-D latents): a warp per pixel, its lanes striding over
// the pixel's C adjacent values (16-byte loads where C divides by 4), summed with warp shuffles.
// NCHW: a block per run of adjacent pixels of a sample, its threads splitting the channels.
// Sums accumulate in float for float, in double for double; the second pass over a pixel's values
// reads them again, mostly from cache.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "ops/channel_layout.h"
#include "ops/pixel_norm.h"

namespace progan::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

int blocksFor(int64_t threads) { return int(std::min<int64_t>((threads + kThreads - 1) / kThreads, int64_t(1) << 20)); }

template <typename A>
__device__ __forceinline__ A warpSum(A v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename A>
__device__ __forceinline__ A inverseRoot(A v) {
  return A(1) / sqrt(v);
}

// Σ a·b over one pixel's c adjacent values, split across a warp's lanes (the warp's total in every lane).
template <typename T, typename A>
__device__ __forceinline__ A rowDot(const T* a, const T* b, int64_t c, int lane, bool quads) {
  A s = 0;
  if constexpr (sizeof(T) == 4) {
    if (quads) {
      const auto* aq = reinterpret_cast<const float4*>(a);
      const auto* bq = reinterpret_cast<const float4*>(b);
      for (int64_t k = lane; k < c / 4; k += kWarp) {
        const float4 u = aq[k], v = bq[k];
        s += u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
      }
      return warpSum(s);
    }
  }
  for (int64_t k = lane; k < c; k += kWarp) s += A(a[k]) * A(b[k]);
  return warpSum(s);
}

// out = rr·a − coef·b over one pixel's c adjacent values, split across a warp's lanes.
template <typename T, typename A>
__device__ __forceinline__ void rowCombine(T* out, const T* a, A rr, const T* b, A coef, int64_t c, int lane, bool quads) {
  if constexpr (sizeof(T) == 4) {
    if (quads) {
      const auto* aq = reinterpret_cast<const float4*>(a);
      const auto* bq = reinterpret_cast<const float4*>(b);
      auto* oq = reinterpret_cast<float4*>(out);
      for (int64_t k = lane; k < c / 4; k += kWarp) {
        const float4 u = aq[k], v = bq[k];
        oq[k] = make_float4(rr * u.x - coef * v.x, rr * u.y - coef * v.y, rr * u.z - coef * v.z, rr * u.w - coef * v.w);
      }
      return;
    }
  }
  for (int64_t k = lane; k < c; k += kWarp) out[k] = T(rr * A(a[k]) - coef * A(b[k]));
}

// Channels inner. Forward: y = x·r, r = 1/√(Σx²/C + ε).
template <typename T>
__global__ void pixelNormRowsKernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ r, int64_t rows, int64_t c,
                                    double epsilon, bool quads) {
  using A = at::opmath_type<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp; row < rows; row += warps) {
    const T* xr = x + row * c;
    T* yr = y + row * c;
    const A rr = inverseRoot(rowDot<T, A>(xr, xr, c, lane, quads) / A(c) + A(epsilon));
    if (lane == 0) r[row] = T(rr);
    rowCombine<T, A>(yr, xr, rr, xr, A(0), c, lane, quads);
  }
}

// Channels inner. Backward: ∂x = r·g − x·r³·(Σ g·x)/C.
template <typename T>
__global__ void pixelNormRowsBackwardKernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ r,
                                            T* __restrict__ gx, int64_t rows, int64_t c, bool quads) {
  using A = at::opmath_type<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp; row < rows; row += warps) {
    const T* gr = g + row * c;
    const T* xr = x + row * c;
    T* out = gx + row * c;
    const A rr = A(r[row]);
    const A coef = rr * rr * rr * rowDot<T, A>(gr, xr, c, lane, quads) / A(c);
    rowCombine<T, A>(out, gr, rr, xr, coef, c, lane, quads);
  }
}

// NCHW: a block holds bdx adjacent pixels of one sample (threadIdx.x, so that a warp reads
// adjacent addresses) and splits their C channels among bdy rows of threads (threadIdx.y), whose
// partial sums meet in shared memory. (A thread per pixel left G's 4×4 block, whose dense layer
// writes NCHW, with 16 threads a sample looping over 512 channels: 0.1 ms a call.)
template <typename T>
__device__ __forceinline__ at::opmath_type<T> planeSum(at::opmath_type<T> s, at::opmath_type<T>* shared) {
  const int tx = threadIdx.x, ty = threadIdx.y, bdx = blockDim.x;
  shared[ty * bdx + tx] = s;
  __syncthreads();
  at::opmath_type<T> total = 0;
  for (int y = 0; y < int(blockDim.y); ++y) total += shared[y * bdx + tx];
  __syncthreads();
  return total;
}

// This thread's pixel in the NCHW kernels: sample n, pixel q (live when inside the image), and the
// offset of its channel 0.
struct PlanePixel {
  int64_t n, q, base;
  bool live;
};
__device__ __forceinline__ PlanePixel planePixel(int64_t c, int64_t p, int64_t tilesPerSample) {
  const int64_t n = blockIdx.x / tilesPerSample, q = (blockIdx.x % tilesPerSample) * blockDim.x + threadIdx.x;
  return {n, q, n * c * p + q, q < p};
}

template <typename T>
__global__ void pixelNormPlanesKernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ r, int64_t c, int64_t p,
                                      int64_t tilesPerSample, double epsilon) {
  using A = at::opmath_type<T>;
  __shared__ A shared[kThreads];
  const auto px = planePixel(c, p, tilesPerSample);
  A s = 0;
  if (px.live)
    for (int64_t k = threadIdx.y; k < c; k += blockDim.y) {
      const A v = x[px.base + k * p];
      s += v * v;
    }
  const A rr = inverseRoot(planeSum<T>(s, shared) / A(c) + A(epsilon));
  if (!px.live) return;
  if (threadIdx.y == 0) r[px.n * p + px.q] = T(rr);
  for (int64_t k = threadIdx.y; k < c; k += blockDim.y) y[px.base + k * p] = T(A(x[px.base + k * p]) * rr);
}

template <typename T>
__global__ void pixelNormPlanesBackwardKernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ r,
                                              T* __restrict__ gx, int64_t c, int64_t p, int64_t tilesPerSample) {
  using A = at::opmath_type<T>;
  __shared__ A shared[kThreads];
  const auto px = planePixel(c, p, tilesPerSample);
  A dot = 0;
  if (px.live)
    for (int64_t k = threadIdx.y; k < c; k += blockDim.y) dot += A(g[px.base + k * p]) * A(x[px.base + k * p]);
  dot = planeSum<T>(dot, shared);
  if (!px.live) return;
  const A rr = A(r[px.n * p + px.q]);
  const A coef = rr * rr * rr * dot / A(c);
  for (int64_t k = threadIdx.y; k < c; k += blockDim.y)
    gx[px.base + k * p] = T(rr * A(g[px.base + k * p]) - A(x[px.base + k * p]) * coef);
}

// The NCHW kernels' blocks: up to 32 adjacent pixels across, the rest of kThreads down the channels.
struct PlaneTiles {
  dim3 threads;
  int64_t tilesPerSample, blocks;
};
PlaneTiles planeTiles(const ChannelLayout& l) {
  int width = 1;
  while (width < 32 && width < l.pixels) width *= 2;
  const int64_t tiles = (l.pixels + width - 1) / width;
  return {dim3(width, kThreads / width), tiles, l.samples * tiles};
}

// 16-byte loads along a row: C divides by 4 and the rows start 16-byte aligned.
bool quadRows(const at::Tensor& t, int64_t c) { return c % 4 == 0 && reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 16 == 0; }

}  // namespace

std::tuple<at::Tensor, at::Tensor> pixelNormCuda(const at::Tensor& xIn, double epsilon) {
  const auto [x, l] = denseChannels(xIn);
  auto y = at::empty_like(x);
  auto r = at::empty({l.samples, l.pixels}, x.options());
  const int64_t pixels = l.samples * l.pixels;
  if (pixels == 0) return {y, r};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelNormCuda", [&] {
    if (l.channelsInner) {
      pixelNormRowsKernel<scalar_t><<<blocksFor(pixels * kWarp), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), pixels, l.channels, epsilon, quadRows(x, l.channels) && quadRows(y, l.channels));
    } else {
      const auto t = planeTiles(l);
      pixelNormPlanesKernel<scalar_t><<<int(t.blocks), t.threads, 0, stream>>>(x.const_data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                                                                           r.data_ptr<scalar_t>(), l.channels, l.pixels, t.tilesPerSample, epsilon);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, r};
}

at::Tensor pixelNormBackwardCuda(const at::Tensor& gradIn, const at::Tensor& xIn, const at::Tensor& rIn) {
  const auto [x, l] = denseChannels(xIn);
  const auto g = inChannelLayout(gradIn, l);
  const auto r = rIn.contiguous();
  auto gx = at::empty_like(x);
  const int64_t pixels = l.samples * l.pixels;
  if (pixels == 0) return gx;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelNormBackwardCuda", [&] {
    if (l.channelsInner) {
      pixelNormRowsBackwardKernel<scalar_t><<<blocksFor(pixels * kWarp), kThreads, 0, stream>>>(
          g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), r.const_data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), pixels,
          l.channels, quadRows(g, l.channels) && quadRows(x, l.channels) && quadRows(gx, l.channels));
    } else {
      const auto t = planeTiles(l);
      pixelNormPlanesBackwardKernel<scalar_t><<<int(t.blocks), t.threads, 0, stream>>>(
          g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), r.const_data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), l.channels,
          l.pixels, t.tilesPerSample);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return gx;
}

}  // namespace progan::kernels
