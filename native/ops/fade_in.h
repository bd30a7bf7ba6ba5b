// Fade-in blends of progressive growing (paper §3, Fig. 2), each one pass over memory:
//  upsampleLerp(low, high, α) = lerp(upsample2x(low), high, α)          G output blend
//  fadeReals(x, α)            = lerp(upsample2x(avgpool2x(x)), x, α)     real-image fade (official FadeLOD)
// The discriminator-input blend is a plain lerp of equal shapes (at::lerp is already one pass: lerpBy).
// Each has a reference (ATen ops) and a kernel (CPU here, CUDA in fade_in.cu) behind autograd
// functions whose backward passes are themselves differentiable: the gradient penalty
// differentiates D, and with it these blends, twice.
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/ops_impl.h"

namespace progan {

// The fade-in weight α of the newest block. `value` decides which paths run (α < 1 blends) and is
// what the fused kernels take. `onDevice`, when defined, is a 0-dim tensor on the training device
// holding the α the blends use instead (as ATen lerps with a tensor weight): a step recorded as a
// CUDA graph (train/step_graph.h) replays its kernels with their recorded arguments, but re-reads
// memory, so a fade whose α changes every step is recorded once.
struct Alpha {
  Alpha(double v) : value(v) {}  // NOLINT(google-explicit-constructor): a plain α wherever a number is given
  Alpha(double v, at::Tensor device) : value(v), onDevice(std::move(device)) {}
  double value;
  at::Tensor onDevice;
};

// lerp(a, b, α) with α from `alpha.onDevice` when defined: the discriminator-input blend.
at::Tensor lerpBy(const at::Tensor& a, const at::Tensor& b, const Alpha& alpha);

at::Tensor upsampleLerp(const at::Tensor& low, const at::Tensor& high, const Alpha& alpha, OpsImpl impl = OpsImpl::Auto);
at::Tensor fadeReals(const at::Tensor& x, const Alpha& alpha, OpsImpl impl = OpsImpl::Auto);

// The references, also what runs for an α on the device.
namespace ops_reference {
at::Tensor upsampleLerp(const at::Tensor& low, const at::Tensor& high, const Alpha& alpha);
at::Tensor fadeReals(const at::Tensor& x, const Alpha& alpha);
}  // namespace ops_reference

// Kernels (no autograd): fade_in.cpp (CPU), fade_in.cu (CUDA).
namespace kernels {
at::Tensor upsampleLerpCpu(const at::Tensor& low, const at::Tensor& high, double alpha);
at::Tensor sumPool2xCpu(const at::Tensor& x, double scale);     // scale · Σ over each 2×2 block
at::Tensor upsample2xCpu(const at::Tensor& x, double scale);    // scale · nearest ×2
at::Tensor fadeRealsCpu(const at::Tensor& x, double alpha);
#ifdef PROGAN_WITH_CUDA
at::Tensor upsampleLerpCuda(const at::Tensor& low, const at::Tensor& high, double alpha);
at::Tensor sumPool2xCuda(const at::Tensor& x, double scale);
at::Tensor upsample2xCuda(const at::Tensor& x, double scale);
at::Tensor fadeRealsCuda(const at::Tensor& x, double alpha);
#endif
}  // namespace kernels

}  // namespace progan
