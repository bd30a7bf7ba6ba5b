// WGAN-GP's gradient penalty (Gulrajani et al. 2017, as in the official loss.py):
// x̂ = lerp(real, fake, u) per sample; penalty = λ/γ² · (‖∇x̂ D(x̂)‖₂ / k − γ)², per sample.
// k rescales a native-resolution norm to the norm the official code sees on full-resolution
// inputs (PAPER.md, "Gradient-penalty scale"); k = 1 is the plain native penalty.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

#include "ops/fade_in.h"

namespace progan {

// Returns the penalty per sample [N], differentiable w.r.t. D's parameters (double backward).
at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& scores,
                                      const at::Tensor& real, const at::Tensor& fake, const at::Tensor& u,
                                      double lambda, double gamma, double normDivisor, OpsImpl impl = OpsImpl::Auto);

// λ/γ²·(‖g_n‖/k − γ)² per sample from the gradients g [N, …]: the reference (ATen ops) and the
// fused autograd function (one reduction pass forward, one scaling pass backward).
at::Tensor penaltyFromGradients(const at::Tensor& grad, double lambda, double gamma, double normDivisor,
                                OpsImpl impl = OpsImpl::Auto);

namespace kernels {
at::Tensor sampleNormsCpu(const at::Tensor& grad);  // ‖g_n‖₂ per sample, accumulated in double
#ifdef PROGAN_WITH_CUDA
at::Tensor sampleNormsCuda(const at::Tensor& grad);
#endif
}  // namespace kernels

}  // namespace progan
