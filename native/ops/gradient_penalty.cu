// CUDA kernel of the gradient penalty's per-sample norms (gradient_penalty.h): one block per
// sample, 16-byte loads where the sample's data is aligned, a shared-memory tree reduction.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/gradient_penalty.h"

namespace progan::kernels {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void sampleNormsKernel(const T* __restrict__ g, T* __restrict__ out, int64_t per) {
  __shared__ double partial[kThreads];
  const T* p = g + blockIdx.x * per;
  double s = 0;
  if constexpr (sizeof(T) == 4) {
    // float4 loads when the sample starts 16-byte aligned and its length divides by 4.
    if ((reinterpret_cast<uintptr_t>(p) % 16) == 0 && per % 4 == 0) {
      const float4* v = reinterpret_cast<const float4*>(p);
      for (int64_t i = threadIdx.x; i < per / 4; i += blockDim.x) {
        const float4 q = v[i];
        s += double(q.x) * q.x + double(q.y) * q.y + double(q.z) * q.z + double(q.w) * q.w;
      }
    } else {
      for (int64_t i = threadIdx.x; i < per; i += blockDim.x) s += double(p[i]) * p[i];
    }
  } else {
    for (int64_t i = threadIdx.x; i < per; i += blockDim.x) s += double(p[i]) * p[i];
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = T(sqrt(partial[0]));
}

}  // namespace

at::Tensor sampleNormsCuda(const at::Tensor& gradIn) {
  const auto g = gradIn.contiguous();
  const int64_t n = g.size(0);
  auto out = at::empty({n}, g.options());
  if (n == 0) return out;
  const int64_t per = g.numel() / n;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sampleNormsCuda", [&] {
    sampleNormsKernel<scalar_t><<<int(n), kThreads, 0, stream>>>(g.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), per);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace progan::kernels
