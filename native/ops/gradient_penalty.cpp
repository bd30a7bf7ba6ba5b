#include "ops/gradient_penalty.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

namespace progan {

namespace kernels {

at::Tensor sampleNormsCpu(const at::Tensor& gradIn) {
  const auto g = gradIn.contiguous();
  const int64_t n = g.size(0), per = g.numel() / std::max<int64_t>(n, 1);
  auto out = at::empty({n}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sampleNormsCpu", [&] {
    const auto* d = g.data_ptr<scalar_t>();
    auto* o = out.data_ptr<scalar_t>();
    // A sample per task only where samples are large: OpenMP's wake-up (10–100 µs) outweighs a 4²–8²
    // image's few hundred multiply-adds.
    at::parallel_for(0, n, std::max<int64_t>(1, 32768 / std::max<int64_t>(per, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto* p = d + i * per;
        // Four partial sums let the compiler vectorise; double keeps large samples exact enough.
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t j = 0;
        for (; j + 4 <= per; j += 4) {
          s0 += double(p[j]) * p[j];
          s1 += double(p[j + 1]) * p[j + 1];
          s2 += double(p[j + 2]) * p[j + 2];
          s3 += double(p[j + 3]) * p[j + 3];
        }
        for (; j < per; ++j) s0 += double(p[j]) * p[j];
        o[i] = scalar_t(std::sqrt(s0 + s1 + s2 + s3));
      }
    });
  });
  return out;
}

}  // namespace kernels

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PenaltyFromGradients : torch::autograd::Function<PenaltyFromGradients> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, double lambda, double gamma, double k) {
#ifdef PROGAN_WITH_CUDA
    const auto norms = grad.is_cuda() ? kernels::sampleNormsCuda(grad) : kernels::sampleNormsCpu(grad);
#else
    const auto norms = kernels::sampleNormsCpu(grad);
#endif
    const auto scaled = norms / k;
    ctx->save_for_backward({grad, scaled});
    ctx->saved_data["lambda"] = lambda;
    ctx->saved_data["gamma"] = gamma;
    ctx->saved_data["k"] = k;
    return (scaled - gamma).square() * (lambda / (gamma * gamma));
  }

  // d/dg of λ/γ²(‖g‖/k − γ)² = λ/γ² · 2(n − γ) / (k² n) · g with n = ‖g‖/k (0 where g = 0).
  static variable_list backward(AutogradContext* ctx, variable_list gradOut) {
    const auto saved = ctx->get_saved_variables();
    const auto& grad = saved[0];
    auto n = saved[1];
    const double kk = ctx->saved_data["k"].toDouble();
    if (torch::autograd::GradMode::is_enabled()) {
      // A backward that will itself be differentiated: n must depend on grad in the graph.
      std::vector<int64_t> dims;
      for (int64_t d = 1; d < grad.dim(); ++d) dims.push_back(d);
      n = grad.square().sum(dims).sqrt() / kk;
    }
    const double lambda = ctx->saved_data["lambda"].toDouble(), gamma = ctx->saved_data["gamma"].toDouble();
    const double k = ctx->saved_data["k"].toDouble();
    auto coef = gradOut[0] * (2.0 * lambda / (gamma * gamma * k * k)) * (n - gamma) / n;
    coef = at::where(n > 0, coef, at::zeros_like(coef));
    std::vector<int64_t> shape(grad.dim(), 1);
    shape[0] = grad.size(0);
    return {grad * coef.view(shape), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor penaltyFromGradients(const at::Tensor& grad, double lambda, double gamma, double normDivisor, OpsImpl impl) {
  TORCH_CHECK(grad.dim() >= 2, "penaltyFromGradients: expected per-sample gradients [N, ...] but received ", grad.sizes());
  TORCH_CHECK(gamma > 0 && normDivisor > 0, "penaltyFromGradients: gamma and the norm divisor must be positive");
  const bool kernel = grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble;
  if (impl == OpsImpl::Reference || !kernel) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < grad.dim(); ++d) dims.push_back(d);
    const auto norms = grad.square().sum(dims).sqrt() / normDivisor;
    return (norms - gamma).square() * (lambda / (gamma * gamma));
  }
  return PenaltyFromGradients::apply(grad, lambda, gamma, normDivisor);
}

at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& scores,
                                      const at::Tensor& real, const at::Tensor& fake, const at::Tensor& u,
                                      double lambda, double gamma, double normDivisor, OpsImpl impl) {
  TORCH_CHECK(real.sizes() == fake.sizes(), "gradientPenalty: real ", real.sizes(), " and fake ", fake.sizes(),
              " differ in shape");
  TORCH_CHECK(u.dim() == 4 && u.size(0) == real.size(0), "gradientPenalty: u must be [N, 1, 1, 1]");
  auto mixed = at::lerp(real.detach(), fake.detach(), u).requires_grad_(true);
  const auto out = scores(mixed);
  // Gradient of the summed scores (official: reduce_sum(mixed_scores)) w.r.t. the mixed images.
  auto grad = torch::autograd::grad({out.sum()}, {mixed}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return penaltyFromGradients(grad, lambda, gamma, normDivisor, impl);
}

}  // namespace progan
