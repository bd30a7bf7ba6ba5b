// CUDA kernels of lrelu(y + b) (bias_leaky_relu.h), on the current stream. Forward: grid-stride;
// 16-byte loads and stores where four adjacent elements share a channel (NCHW, H·W divisible by 4)
// or hold four adjacent channels (channels-last, C divisible by 4); 32-bit indices where they
// suffice. Backward with the bias gradient: channels-last (a GPU's layout) only.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

#include "layers/leaky_relu.h"
#include "ops/bias_leaky_relu.h"
#include "ops/channel_layout.h"

namespace progan::kernels {

namespace {

constexpr int kThreads = 256;

int blocksFor(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20)); }

template <typename T>
__device__ __forceinline__ T leaky(T v, T slope) {
  return v > T(0) ? v : v * slope;
}

// Element i of memory belongs to channel (i / inner) % channels: inner is 1 where channels are
// inner, H·W in NCHW.
template <typename T, typename Index>
__global__ void biasLeakyReluKernel(const T* __restrict__ y, const T* __restrict__ b, T* __restrict__ out, Index n,
                                    Index channels, Index inner, T slope) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < n; i += Index(blockDim.x) * gridDim.x)
    out[i] = leaky(y[i] + b[(i / inner) % channels], slope);
}

// Four elements a thread. ChannelsInner: channels c … c+3 of one pixel; else one channel's four pixels.
template <bool ChannelsInner, typename Index>
__global__ void biasLeakyReluVec4Kernel(const float4* __restrict__ y, const float* __restrict__ b, float4* __restrict__ out,
                                        Index quads, Index channels, Index inner, float slope) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < quads; i += Index(blockDim.x) * gridDim.x) {
    float4 v = y[i];
    if constexpr (ChannelsInner) {
      const Index c = (4 * i) % channels;
      v.x += b[c], v.y += b[c + 1], v.z += b[c + 2], v.w += b[c + 3];
    } else {
      const float bias = b[(4 * i / inner) % channels];
      v.x += bias, v.y += bias, v.z += bias, v.w += bias;
    }
    out[i] = make_float4(leaky(v.x, slope), leaky(v.y, slope), leaky(v.z, slope), leaky(v.w, slope));
  }
}

template <typename Index>
void launchFloat(const at::Tensor& y, const at::Tensor& b, at::Tensor& out, const ChannelLayout& l, cudaStream_t stream) {
  const Index n = Index(y.numel()), channels = Index(l.channels), inner = Index(l.channelsInner ? 1 : l.pixels);
  const auto slope = float(kLeakySlope);
  const bool aligned = reinterpret_cast<uintptr_t>(y.const_data_ptr()) % 16 == 0 && reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0;
  const auto* yq = reinterpret_cast<const float4*>(y.const_data_ptr<float>());
  auto* oq = reinterpret_cast<float4*>(out.data_ptr<float>());
  if (aligned && l.channelsInner && channels % 4 == 0) {
    biasLeakyReluVec4Kernel<true, Index><<<blocksFor(n / 4), kThreads, 0, stream>>>(yq, b.const_data_ptr<float>(), oq, n / 4, channels, inner, slope);
  } else if (aligned && !l.channelsInner && inner % 4 == 0) {
    biasLeakyReluVec4Kernel<false, Index><<<blocksFor(n / 4), kThreads, 0, stream>>>(yq, b.const_data_ptr<float>(), oq, n / 4, channels, inner, slope);
  } else {
    biasLeakyReluKernel<float, Index><<<blocksFor(n), kThreads, 0, stream>>>(y.const_data_ptr<float>(), b.const_data_ptr<float>(),
                                                                             out.data_ptr<float>(), n, channels, inner, slope);
  }
}

// Backward, channels inner: rows of C values. Block b takes rows [b·rowsPerBlock, …) and writes
// partial[b][c] = Σ over its rows of ∂y[row][c]. Threads are a 2-D tile: x across the row's columns
// (float4 quads of channels, or single channels), y across rows; each thread sums its column over
// every bdy-th row, then the tile's y partials meet in shared memory in a fixed order.
template <typename T, bool Quads>
__global__ void biasLeakyReluBackwardRowsKernel(const T* __restrict__ g, const T* __restrict__ z, T* __restrict__ gy,
                                                at::opmath_type<T>* __restrict__ partial, int64_t rows, int64_t channels,
                                                int64_t rowsPerBlock, T slope) {
  using A = at::opmath_type<T>;
  constexpr int kWidth = Quads ? 4 : 1;
  __shared__ A tile[kThreads * kWidth];
  const int64_t columns = channels / kWidth;
  const int64_t first = blockIdx.x * rowsPerBlock, last = std::min(rows, first + rowsPerBlock);
  const int tx = threadIdx.x, ty = threadIdx.y, bdx = blockDim.x, bdy = blockDim.y;
  for (int64_t base = 0; base < columns; base += bdx) {
    const int64_t column = base + tx;
    A sum[kWidth] = {};
    if (column < columns) {
      for (int64_t row = first + ty; row < last; row += bdy) {
        const int64_t i = row * channels + column * kWidth;
        if constexpr (Quads) {
          const float4 gq = *reinterpret_cast<const float4*>(g + i), zq = *reinterpret_cast<const float4*>(z + i);
          const float4 v = make_float4(zq.x > 0 ? gq.x : gq.x * slope, zq.y > 0 ? gq.y : gq.y * slope,
                                       zq.z > 0 ? gq.z : gq.z * slope, zq.w > 0 ? gq.w : gq.w * slope);
          *reinterpret_cast<float4*>(gy + i) = v;
          sum[0] += v.x, sum[1] += v.y, sum[2] += v.z, sum[3] += v.w;
        } else {
          const T v = z[i] > T(0) ? g[i] : g[i] * slope;
          gy[i] = v;
          sum[0] += A(v);
        }
      }
    }
    for (int k = 0; k < kWidth; ++k) tile[(ty * bdx + tx) * kWidth + k] = sum[k];
    __syncthreads();
    if (ty == 0 && column < columns) {
      for (int k = 0; k < kWidth; ++k) {
        A s = 0;
        for (int y = 0; y < bdy; ++y) s += tile[(y * bdx + tx) * kWidth + k];
        partial[blockIdx.x * channels + column * kWidth + k] = s;
      }
    }
    __syncthreads();
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> biasLeakyReluBackwardCuda(const at::Tensor& gradIn, const at::Tensor& zIn) {
  const auto [z, l] = denseChannels(zIn);
  TORCH_CHECK(l.channelsInner, "biasLeakyReluBackwardCuda expects a channels-last or 2-D tensor but received strides ", zIn.strides());
  const auto g = inChannelLayout(gradIn, l);
  auto gy = at::empty_like(z);
  const int64_t rows = l.samples * l.pixels, channels = l.channels;
  // About 32 rows a block, at most 1024 blocks: the partial sums stay a small fraction of the pass.
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((rows + 31) / 32, 1024));
  const int64_t rowsPerBlock = (rows + blocks - 1) / blocks;
  if (rows == 0 || channels == 0) return {gy, at::zeros({channels}, z.options())};
  auto partial = at::empty({blocks, channels}, z.options().dtype(at::toOpMathType(z.scalar_type())));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool quads = z.scalar_type() == at::kFloat && channels % 4 == 0 && reinterpret_cast<uintptr_t>(z.const_data_ptr()) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(g.const_data_ptr()) % 16 == 0 && reinterpret_cast<uintptr_t>(gy.data_ptr()) % 16 == 0;
  const int64_t columns = quads ? channels / 4 : channels;
  const int bdx = int(std::min<int64_t>(kThreads, (columns + 31) / 32 * 32));
  const dim3 threads(bdx, kThreads / bdx);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "biasLeakyReluBackwardCuda", [&] {
    using A = at::opmath_type<scalar_t>;
    if (quads) {
      if constexpr (std::is_same_v<scalar_t, float>)
        biasLeakyReluBackwardRowsKernel<float, true><<<int(blocks), threads, 0, stream>>>(
            g.const_data_ptr<float>(), z.const_data_ptr<float>(), gy.data_ptr<float>(), partial.data_ptr<float>(), rows, channels, rowsPerBlock,
            float(kLeakySlope));
    } else {
      biasLeakyReluBackwardRowsKernel<scalar_t, false><<<int(blocks), threads, 0, stream>>>(
          g.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), partial.data_ptr<A>(), rows, channels,
          rowsPerBlock, scalar_t(kLeakySlope));
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gy, partial.sum(0).to(z.scalar_type())};
}

at::Tensor biasLeakyReluCuda(const at::Tensor& yIn, const at::Tensor& bias) {
  const auto [y, l] = denseChannels(yIn);
  auto out = at::empty_like(y);
  if (y.numel() == 0) return out;
  const auto b = bias.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool small = y.numel() < (int64_t(1) << 31);
  if (y.scalar_type() == at::kFloat) {
    if (small) launchFloat<uint32_t>(y, b, out, l, stream);
    else launchFloat<int64_t>(y, b, out, l, stream);
  } else {
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "biasLeakyReluCuda", [&] {
      biasLeakyReluKernel<scalar_t, int64_t><<<blocksFor(y.numel()), kThreads, 0, stream>>>(
          y.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), y.numel(), l.channels,
          l.channelsInner ? 1 : l.pixels, scalar_t(kLeakySlope));
    });
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace progan::kernels
