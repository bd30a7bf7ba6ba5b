// lrelu(s·y + b): a layer's output scale, its bias and its leaky ReLU (slope 0.2, paper §A.1) in one
// pass over memory.
//
// cuDNN's convolutions add no bias of their own: ATen adds it in a broadcast pass after the
// convolution, and the activation is a second pass (on an H100, 32² fading step: 2.7 ms of bias adds
// and 1.5 ms of leaky ReLU in ~51 ms). Here they are one read and one write. oneDNN adds the bias
// inside its convolution and sums its gradient inside its weight-gradient kernel, so the networks
// take this op on CUDA. On the CPU, the layers whose convolution runs by the unscaled weight
// (Winograd, or a weight larger than the output) take it with their equalized-LR scale s, in place
// of an add (scale and bias) and a leaky ReLU and as many passes and autograd nodes in each backward
// (small-preset 8² fading step, one trainer, 14 interleaved rounds: 55.0 / 44.6 ms median / min
// against 58.0 / 46.9). s ≠ 1 runs the kernels on the CPU only (no GPU caller passes one).
//
// Backward: ∂y = s·g·lrelu'(z) (layers/leaky_relu.h, whose own derivative in z is "none", so the
// gradient penalty's double backward skips it), ∂b = Σ ∂y over every dimension but 1. A backward
// that will not be differentiated (every one that needs ∂b: the penalty's gradient has no bias term)
// computes both in one pass, partial sums per block of rows or per plane added up afterwards in a
// fixed order, instead of writing ∂y and reading it again for the sum (on an H100, 32² fading step:
// 1.2 ms of such sums).
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/ops_impl.h"

namespace progan {

// y: [N, C] or [N, C, H, W] (any layout; the result keeps a channels-last one), bias: [C].
at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias, OpsImpl impl = OpsImpl::Auto, double scale = 1.0);

namespace ops_reference {
at::Tensor biasLeakyRelu(const at::Tensor& y, const at::Tensor& bias, double scale = 1.0);
}  // namespace ops_reference

// Kernels (no autograd): y NCHW-contiguous, channels-last-contiguous or 2-D contiguous, float or double.
namespace kernels {
at::Tensor biasLeakyReluCpu(const at::Tensor& y, const at::Tensor& bias, double scale = 1.0);
// (∂y, ∂b) from the output gradient g and the output z; ∂y in z's layout.
std::tuple<at::Tensor, at::Tensor> biasLeakyReluBackwardCpu(const at::Tensor& grad, const at::Tensor& z, double scale = 1.0);
#ifdef PROGAN_WITH_CUDA
at::Tensor biasLeakyReluCuda(const at::Tensor& y, const at::Tensor& bias);
// Channels-inner z only (channels-last or 2-D): the layout a GPU's activations take.
std::tuple<at::Tensor, at::Tensor> biasLeakyReluBackwardCuda(const at::Tensor& grad, const at::Tensor& z);
#endif
}  // namespace kernels

}  // namespace progan
