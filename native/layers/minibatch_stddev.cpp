#include "layers/minibatch_stddev.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

constexpr double kEpsilon = 1e-8;

// Statistics in fp32 under reduced precision (official), in fp64 when the input is fp64.
at::ScalarType statsType(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// [P·g·M, C, H, W] → [P, g, M, C, H, W]: dim 1 runs over a group's members.
at::Tensor grouped(const at::Tensor& x, int64_t parts, int64_t g) {
  return x.to(statsType(x)).reshape({parts, g, x.size(0) / (parts * g), x.size(1), x.size(2), x.size(3)});
}

// The per-group statistic s[p, m] of x, as ATen ops differentiated by autograd.
at::Tensor statisticReference(const at::Tensor& x, int64_t parts, int64_t g) {
  auto y = grouped(x, parts, g);
  y = y - y.mean(1, true);
  y = (y.square().mean(1) + kEpsilon).sqrt();  // [P, M, C, H, W]
  return y.mean({2, 3, 4});                     // [P, M]
}

// With d_i = x_i − mean_i x, σ = sqrt(mean_i d_i² + ε) and K = C·H·W, per group:
//   s = mean_{C,H,W} σ,   ∂s/∂x_i = d_i / (g·K·σ)   (the mean's own term vanishes: Σ_i d_i = 0).
// The backward gx_i = a·d_i/σ with a = gs/(g·K) is differentiated once more by the penalty; for an
// incoming q_i = ∂L/∂gx_i:
//   ∂L/∂gs  = Σ_{i,C,H,W} q_i·d_i/σ / (g·K)
//   ∂L/∂x_j = a·[(q_j − mean_i q_i)/σ − d_j·Σ_i(q_i·d_i) / (g·σ³)]
struct StatisticGradFunction : Function<StatisticGradFunction> {
  // d and sigma are x's group deviations and stddevs, [P, g, M, C, H, W] and [P, 1, M, C, H, W].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gradStat, const at::Tensor& x, const at::Tensor& d,
                            const at::Tensor& sigma) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({gradStat, d, sigma});
    ctx->saved_data["dtype"] = int64_t(x.scalar_type());
    const auto a = gradCoefficient(gradStat, d);
    return (a * d / sigma).reshape(x.sizes()).to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::autograd::GradMode::is_enabled(),
                "minibatchStddev has closed-form derivatives to second order only; use impl 'reference' for higher orders");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto &gradStat = saved[0], &d = saved[1], &sigma = saved[2];
    const int64_t g = d.size(1), k = d.size(3) * d.size(4) * d.size(5);
    const auto q = grads[0].to(d.scalar_type()).reshape(d.sizes());
    at::Tensor dGradStat, dx;
    if (ctx->needs_input_grad(0)) dGradStat = (q * d / sigma).sum({1, 3, 4, 5}) / double(g * k);
    if (ctx->needs_input_grad(1)) {
      const auto a = gradCoefficient(gradStat, d);
      const auto qd = (q * d).sum(1, true);
      const auto y = a * ((q - q.mean(1, true)) / sigma - d * qd / (double(g) * sigma * sigma * sigma));
      const auto type = at::ScalarType(ctx->saved_data["dtype"].toInt());
      dx = y.reshape({d.size(0) * g * d.size(2), d.size(3), d.size(4), d.size(5)}).to(type);
    }
    return {dGradStat, dx, at::Tensor(), at::Tensor()};
  }

  // a = gs / (g·K), broadcast over [P, g, M, C, H, W].
  static at::Tensor gradCoefficient(const at::Tensor& gradStat, const at::Tensor& d) {
    const int64_t g = d.size(1), k = d.size(3) * d.size(4) * d.size(5);
    return (gradStat.to(d.scalar_type()) / double(g * k)).view({d.size(0), 1, d.size(2), 1, 1, 1});
  }
};

struct StatisticFunction : Function<StatisticFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t parts, int64_t g) {
    ctx->set_materialize_grads(false);
    const auto y = grouped(x, parts, g);
    const auto d = y - y.mean(1, true);
    const auto sigma = (d.square().mean(1, true) + kEpsilon).sqrt();  // [P, 1, M, C, H, W]
    ctx->save_for_backward({x, d, sigma});
    return sigma.mean({1, 3, 4, 5});  // [P, M]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    return {StatisticGradFunction::apply(grads[0], saved[0], saved[1], saved[2]), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize, int64_t parts, OpsImpl impl) {
  TORCH_CHECK(x.dim() == 4, "minibatchStddev expects [N, C, H, W] but received ", x.sizes());
  TORCH_CHECK(parts >= 1 && x.size(0) % parts == 0, "minibatchStddev: ", x.size(0), " samples do not split into ",
              parts, " equal parts");
  const int64_t n = x.size(0) / parts, h = x.size(2), w = x.size(3);
  const int64_t g = std::min(groupSize, n);
  TORCH_CHECK(g > 0 && n % g == 0, "Expected a batch size divisible by the minibatch-stddev group size ", g,
              " but received ", n, ". Use a batch size that is a multiple of ", g,
              " or set minibatchStddevGroup to a divisor of it.");
  auto s = impl == OpsImpl::Reference ? statisticReference(x, parts, g) : StatisticFunction::apply(x, parts, g);
  // [P, M] → one map per sample: sample (p, i, m) takes s[p, m].
  s = s.to(x.scalar_type()).view({parts, 1, n / g, 1, 1, 1});
  const auto map = s.expand({parts, g, n / g, 1, h, w}).reshape({parts * n, 1, h, w});
  return at::cat({x, map}, 1);
}

}  // namespace progan
