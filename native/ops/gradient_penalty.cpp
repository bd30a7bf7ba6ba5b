#include "ops/gradient_penalty.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace progan {

GradientPenaltyResult gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& scores,
                                      const at::Tensor& real, const at::Tensor& fake, const at::Tensor& u,
                                      double lambda, double gamma, double normDivisor) {
  TORCH_CHECK(real.sizes() == fake.sizes(), "gradientPenalty: real ", real.sizes(), " and fake ", fake.sizes(),
              " differ in shape");
  TORCH_CHECK(u.dim() == 4 && u.size(0) == real.size(0), "gradientPenalty: u must be [N, 1, 1, 1]");
  auto mixed = at::lerp(real.detach(), fake.detach(), u).requires_grad_(true);
  const auto out = scores(mixed);
  // Gradient of the summed scores (official: reduce_sum(mixed_scores)) w.r.t. the mixed images.
  auto grad = torch::autograd::grad({out.sum()}, {mixed}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  auto norms = grad.square().sum({1, 2, 3}).sqrt() / normDivisor;
  auto penalty = (norms - gamma).square() * (lambda / (gamma * gamma));
  return {penalty, norms.detach()};
}

}  // namespace progan
