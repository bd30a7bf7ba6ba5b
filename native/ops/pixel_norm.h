// Pixelwise feature normalisation (paper §4.2): each pixel's feature vector to unit mean square,
// y = x·r with r = 1/√(mean_c x² + ε), over dimension 1 of [N, C, H, W] (or [N, C]: the latents).
//
// As ATen ops a forward is five passes over the activations (square, mean, add, rsqrt, multiply)
// and its backward, autograd's, about as many again. The kernels read each pixel's C values twice
// (the second read mostly from cache) and write once, forward and backward:
//   forward   r = 1/√(Σ_c x²/C + ε),  y = x·r
//   backward  ∂x = r·g − x·r³·(Σ_c g·x)/C
// Only G normalises pixels, and G is differentiated once per step; a backward that will itself be
// differentiated takes the formula above as ATen ops, so any order of derivative stays exact.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/ops_impl.h"

namespace progan {

at::Tensor pixelNorm(const at::Tensor& x, double epsilon, OpsImpl impl = OpsImpl::Auto);

namespace ops_reference {
at::Tensor pixelNorm(const at::Tensor& x, double epsilon);
}  // namespace ops_reference

// Kernels (no autograd): x NCHW-contiguous, channels-last-contiguous or 2-D contiguous, float or
// double; r holds one value per pixel, [N, P] for P = H·W (1 for 2-D x).
namespace kernels {
std::tuple<at::Tensor, at::Tensor> pixelNormCpu(const at::Tensor& x, double epsilon);  // y, r
at::Tensor pixelNormBackwardCpu(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& r);
#ifdef PROGAN_WITH_CUDA
std::tuple<at::Tensor, at::Tensor> pixelNormCuda(const at::Tensor& x, double epsilon);
at::Tensor pixelNormBackwardCuda(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& r);
#endif
}  // namespace kernels

}  // namespace progan
