// CUDA kernels of the fade-in blends (fade_in.h). One thread per output element, grid-stride
// loops, the current stream; float and double (the bf16 autocast path runs these in fp32).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/fade_in.h"

namespace progan::kernels {

namespace {

constexpr int kThreads = 256;

inline int blocksFor(int64_t n) {
  return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

template <typename T>
__global__ void upsampleLerpKernel(const T* __restrict__ low, const T* __restrict__ high, T* __restrict__ out,
                                   int64_t n, int64_t h, int64_t w, T a, T b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t x = i % w, y = (i / w) % h, p = i / (w * h);
    out[i] = b * low[(p * (h / 2) + y / 2) * (w / 2) + x / 2] + a * high[i];
  }
}

template <typename T>
__global__ void sumPoolKernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, int64_t oh, int64_t ow, T s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t x = i % ow, y = (i / ow) % oh, p = i / (ow * oh);
    const T* r0 = in + (p * 2 * oh + 2 * y) * (2 * ow) + 2 * x;
    const T* r1 = r0 + 2 * ow;
    out[i] = s * (r0[0] + r0[1] + r1[0] + r1[1]);
  }
}

template <typename T>
__global__ void upsampleKernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, int64_t h, int64_t w, T s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t x = i % w, y = (i / w) % h, p = i / (w * h);
    out[i] = s * in[(p * (h / 2) + y / 2) * (w / 2) + x / 2];
  }
}

// One thread per 2×2 block: reads four values once, writes four.
template <typename T>
__global__ void fadeRealsKernel(const T* __restrict__ in, T* __restrict__ out, int64_t blocks, int64_t oh, int64_t ow,
                                T a, T b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < blocks; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t x = i % ow, y = (i / ow) % oh, p = i / (ow * oh);
    const int64_t base = (p * 2 * oh + 2 * y) * (2 * ow) + 2 * x;
    const T v00 = in[base], v01 = in[base + 1], v10 = in[base + 2 * ow], v11 = in[base + 2 * ow + 1];
    const T m = b * (v00 + v01 + v10 + v11);
    out[base] = m + a * v00;
    out[base + 1] = m + a * v01;
    out[base + 2 * ow] = m + a * v10;
    out[base + 2 * ow + 1] = m + a * v11;
  }
}

}  // namespace

at::Tensor upsampleLerpCuda(const at::Tensor& lowIn, const at::Tensor& highIn, double alpha) {
  const auto low = lowIn.contiguous(), high = highIn.contiguous();
  auto out = at::empty_like(high);
  const int64_t n = high.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(high.scalar_type(), "upsampleLerpCuda", [&] {
    upsampleLerpKernel<scalar_t><<<blocksFor(n), kThreads, 0, stream>>>(
        low.data_ptr<scalar_t>(), high.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, high.size(2), high.size(3),
        scalar_t(alpha), scalar_t(1.0 - alpha));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor sumPool2xCuda(const at::Tensor& xIn, double scale) {
  const auto x = xIn.contiguous();
  auto out = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}, x.options());
  const int64_t n = out.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sumPool2xCuda", [&] {
    sumPoolKernel<scalar_t><<<blocksFor(n), kThreads, 0, stream>>>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n,
                                                                   out.size(2), out.size(3), scalar_t(scale));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor upsample2xCuda(const at::Tensor& xIn, double scale) {
  const auto x = xIn.contiguous();
  auto out = at::empty({x.size(0), x.size(1), x.size(2) * 2, x.size(3) * 2}, x.options());
  const int64_t n = out.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upsample2xCuda", [&] {
    upsampleKernel<scalar_t><<<blocksFor(n), kThreads, 0, stream>>>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n,
                                                                    out.size(2), out.size(3), scalar_t(scale));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor fadeRealsCuda(const at::Tensor& xIn, double alpha) {
  const auto x = xIn.contiguous();
  auto out = at::empty_like(x);
  const int64_t blocks = x.numel() / 4;
  if (blocks == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fadeRealsCuda", [&] {
    fadeRealsKernel<scalar_t><<<blocksFor(blocks), kThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), blocks, x.size(2) / 2, x.size(3) / 2, scalar_t(alpha),
        scalar_t((1.0 - alpha) * 0.25));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace progan::kernels
