// WGAN-GP's gradient penalty (Gulrajani et al. 2017, as in the official loss.py):
// x̂ = lerp(real, fake, u) per sample; penalty = λ/γ² · (‖∇x̂ D(x̂)‖₂ / k − γ)², per sample.
// k rescales a native-resolution norm to the norm the official code sees on full-resolution
// inputs (PAPER.md, "Gradient-penalty scale"); k = 1 is the plain native penalty.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

namespace progan {

struct GradientPenaltyResult {
  at::Tensor penalty;  // [N], differentiable w.r.t. D's parameters (double backward)
  at::Tensor norms;    // [N], ‖∇‖ / k, detached
};

GradientPenaltyResult gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& scores,
                                      const at::Tensor& real, const at::Tensor& fake, const at::Tensor& u,
                                      double lambda, double gamma, double normDivisor);

}  // namespace progan
