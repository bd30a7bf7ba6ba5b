// Pixelwise feature normalisation (paper §4.2): each pixel's feature vector to unit mean square.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/rsqrt.h>

namespace progan {

inline at::Tensor pixelNorm(const at::Tensor& x, double epsilon = 1e-8) {
  return x * at::rsqrt(x.square().mean(1, /*keepdim=*/true) + epsilon);
}

}  // namespace progan
