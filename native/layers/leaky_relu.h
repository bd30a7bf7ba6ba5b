// Leaky ReLU with the paper's slope 0.2 (§A.1), after every conv and dense layer except the outputs.
//
// Its own autograd functions rather than ATen's: ATen's derivative of leaky_relu_backward with
// respect to the activation's input is a materialised zero tensor, and the gradient penalty's
// double backward sends those zeros back through every layer of D above the minibatch-stddev layer
// (conv, dense, dense), computing weight and input gradients of zeros. Here that derivative is
// "none", so autograd skips those layers; the gradients are the same (test/ops.test.ts).
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

constexpr double kLeakySlope = 0.2;

at::Tensor lrelu(const at::Tensor& x);

// grad·lrelu'(a), where a is the activation's input or its output (they share their sign): the
// activation's backward, differentiable in grad, with "none" as its derivative in a.
at::Tensor lreluGrad(const at::Tensor& grad, const at::Tensor& a);

}  // namespace progan
