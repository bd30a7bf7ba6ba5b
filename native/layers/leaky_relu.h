// Leaky ReLU with the paper's slope 0.2 (§A.1), after every conv and dense layer except the outputs.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/leaky_relu.h>

namespace progan {

inline at::Tensor lrelu(const at::Tensor& x) { return at::leaky_relu(x, 0.2); }

}  // namespace progan
