// CUDA kernel of lrelu(y + b) (bias_leaky_relu.h): grid-stride, the current stream; 16-byte
// loads and stores where four adjacent elements share a channel (NCHW, H·W divisible by 4) or hold
// four adjacent channels (channels-last, C divisible by 4); 32-bit indices where they suffice.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

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

}  // namespace

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
