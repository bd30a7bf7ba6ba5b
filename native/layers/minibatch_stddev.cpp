#include "layers/minibatch_stddev.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <vector>

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
    auto d = y - y.mean(1, true);
    d = d - d.mean(1, true);  // the mean's rounding, taken out (see ColumnStats)
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


// ---- The same closed forms as loops over the CPU tensor, one pass each (the ATen ops above take
// ~20 small kernels and as many temporaries per call: ~0.65 ms a forward of a [32, 128, 4, 4] batch
// in a small-preset 8² step's trace, ~3.2 ms of its step with both derivatives).
//
// x is read as [P, g, M, K] (K = C·H·W); every (p, m) group is independent and runs in blocks of
// kStatBlock of its K columns. Sums over K add one partial per block in block order, so results do
// not depend on the number of threads.
constexpr int64_t kStatBlock = 512;

struct GroupShape {
  int64_t parts, g, m, k;
  int64_t blocks() const { return (k + kStatBlock - 1) / kStatBlock; }
  int64_t tasks() const { return parts * m * blocks(); }
  // Task t: group (p, mm) and its columns [e0, e0 + len).
  void locate(int64_t t, int64_t& p, int64_t& mm, int64_t& e0, int64_t& len) const {
    const int64_t b = t % blocks(), pm = t / blocks();
    p = pm / m, mm = pm % m, e0 = b * kStatBlock, len = std::min(kStatBlock, k - e0);
  }
  // Offset of member i's column e0 in group (p, mm).
  int64_t at(int64_t p, int64_t i, int64_t mm, int64_t e0) const { return ((p * g + i) * m + mm) * k + e0; }
};

GroupShape groupShape(const at::Tensor& x, int64_t parts, int64_t g) {
  return {parts, g, x.size(0) / (parts * g), x.size(1) * x.size(2) * x.size(3)};
}

// A block's column statistics over the g members. The deviation is taken in two passes, the
// second centring the first: x_i − mean alone carries the mean's rounding (up to ε·|x|) as a shift
// common to the group, which outweighs d where σ ≪ |x| and which the derivatives' 1/σ and 1/σ³
// amplify (float32 second derivatives 1–3e-5 off a float64 truth on random inputs, against 1–4e-6
// for ATen's composite, whose autograd projects its results). The shift cannot be folded into the
// mean: it is below the mean's own rounding.
template <class T>
struct ColumnStats {
  T mean[kStatBlock], shift[kStatBlock], sigma[kStatBlock];
  T deviation(const T* xi, int64_t e) const { return (xi[e] - mean[e]) - shift[e]; }
};

template <class T>
void columnStats(const T* x, const GroupShape& s, int64_t p, int64_t mm, int64_t e0, int64_t len, ColumnStats<T>& c) {
  for (int64_t e = 0; e < len; ++e) c.mean[e] = c.shift[e] = c.sigma[e] = T(0);
  for (int64_t i = 0; i < s.g; ++i) {
    const T* xi = x + s.at(p, i, mm, e0);
    for (int64_t e = 0; e < len; ++e) c.mean[e] += xi[e];
  }
  for (int64_t e = 0; e < len; ++e) c.mean[e] /= T(s.g);
  for (int64_t i = 0; i < s.g; ++i) {
    const T* xi = x + s.at(p, i, mm, e0);
    for (int64_t e = 0; e < len; ++e) c.shift[e] += xi[e] - c.mean[e];
  }
  for (int64_t e = 0; e < len; ++e) c.shift[e] /= T(s.g);
  for (int64_t i = 0; i < s.g; ++i) {
    const T* xi = x + s.at(p, i, mm, e0);
    for (int64_t e = 0; e < len; ++e) {
      const T d = c.deviation(xi, e);
      c.sigma[e] += d * d;
    }
  }
  for (int64_t e = 0; e < len; ++e) c.sigma[e] = std::sqrt(c.sigma[e] / T(s.g) + T(kEpsilon));
}

// Sums each group's per-block partials in block order: [P·M·blocks] → [P, M].
at::Tensor sumBlocks(const std::vector<double>& partial, const GroupShape& s, const at::TensorOptions& options, double scale) {
  auto out = at::empty({s.parts, s.m}, options.dtype(at::kDouble));
  double* o = out.mutable_data_ptr<double>();
  for (int64_t pm = 0; pm < s.parts * s.m; ++pm) {
    double sum = 0;
    for (int64_t b = 0; b < s.blocks(); ++b) sum += partial[pm * s.blocks() + b];
    o[pm] = sum * scale;
  }
  return out.to(options.dtype());
}

// Tasks a thread takes at least: ~2¹⁸ elements of x. The statistic of a small preset's [32, 128, 4, 4]
// batch (2¹⁶ elements) runs in ~20 µs on one thread, where waking OpenMP's sleeping worker costs
// up to ~80 µs.
int64_t statGrain(const GroupShape& s) { return std::max<int64_t>(1, (int64_t(1) << 18) / (s.g * std::min(s.k, kStatBlock))); }

// Runs body(t, p, m, e0, len, stats) for every task t (group (p, m), columns [e0, e0 + len))
// with its block's column statistics computed.
template <class T, class Body>
void forEachBlock(const T* x, const GroupShape& s, const Body& body) {
  at::parallel_for(0, s.tasks(), statGrain(s), [&](int64_t begin, int64_t end) {
    ColumnStats<T> stats;
    for (int64_t t = begin; t < end; ++t) {
      int64_t p, mm, e0, len;
      s.locate(t, p, mm, e0, len);
      columnStats(x, s, p, mm, e0, len, stats);
      body(t, p, mm, e0, len, stats);
    }
  });
}

// x (float or double, contiguous) → s[p, m] = mean_K σ.
at::Tensor statisticCpu(const at::Tensor& x, const GroupShape& s) {
  std::vector<double> partial(s.tasks());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "minibatchStddev", [&] {
    forEachBlock(x.const_data_ptr<scalar_t>(), s, [&](int64_t t, int64_t, int64_t, int64_t, int64_t len, const ColumnStats<scalar_t>& c) {
      double sum = 0;
      for (int64_t e = 0; e < len; ++e) sum += c.sigma[e];
      partial[t] = sum;
    });
  });
  return sumBlocks(partial, s, x.options(), 1.0 / double(s.k));
}

// gx_i = a·d_i/σ with a = gs/(g·K), laid out like x.
at::Tensor statisticGradCpu(const at::Tensor& gradStat, const at::Tensor& x, const GroupShape& s) {
  auto gx = at::empty_like(x);
  const auto a = (gradStat.to(at::kDouble) / double(s.g * s.k)).contiguous();
  const double* ap = a.const_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "minibatchStddevGrad", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* gp = gx.mutable_data_ptr<scalar_t>();
    forEachBlock(xp, s, [&](int64_t, int64_t p, int64_t mm, int64_t e0, int64_t len, const ColumnStats<scalar_t>& c) {
      const auto coefficient = scalar_t(ap[p * s.m + mm]);
      for (int64_t i = 0; i < s.g; ++i) {
        const scalar_t* xi = xp + s.at(p, i, mm, e0);
        scalar_t* gi = gp + s.at(p, i, mm, e0);
        for (int64_t e = 0; e < len; ++e) gi[e] = coefficient * c.deviation(xi, e) / c.sigma[e];
      }
    });
  });
  return gx;
}

// For q = ∂L/∂gx (laid out like x): ∂L/∂gs (when dGradStat) and ∂L/∂x (when dx), as in
// StatisticGradFunction::backward.
void statisticGradBackwardCpu(const at::Tensor& q, const at::Tensor& gradStat, const at::Tensor& x, const GroupShape& s,
                              at::Tensor* dGradStat, at::Tensor* dx) {
  std::vector<double> partial(dGradStat ? s.tasks() : 0);
  if (dx) *dx = at::empty_like(x);
  const auto a = (gradStat.to(at::kDouble) / double(s.g * s.k)).contiguous();
  const double* ap = a.const_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "minibatchStddevGradBackward", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* qp = q.const_data_ptr<scalar_t>();
    scalar_t* dp = dx ? dx->mutable_data_ptr<scalar_t>() : nullptr;
    forEachBlock(xp, s, [&](int64_t t, int64_t p, int64_t mm, int64_t e0, int64_t len, const ColumnStats<scalar_t>& c) {
      scalar_t qMean[kStatBlock], qd[kStatBlock];
      for (int64_t e = 0; e < len; ++e) qMean[e] = qd[e] = scalar_t(0);
      for (int64_t i = 0; i < s.g; ++i) {
        const scalar_t* xi = xp + s.at(p, i, mm, e0);
        const scalar_t* qi = qp + s.at(p, i, mm, e0);
        for (int64_t e = 0; e < len; ++e) {
          qMean[e] += qi[e];
          qd[e] += qi[e] * c.deviation(xi, e);
        }
      }
      if (dGradStat) {
        double sum = 0;
        for (int64_t e = 0; e < len; ++e) sum += qd[e] / c.sigma[e];
        partial[t] = sum;
      }
      if (!dp) return;
      const auto coefficient = scalar_t(ap[p * s.m + mm]);
      for (int64_t e = 0; e < len; ++e) qMean[e] /= scalar_t(s.g);
      for (int64_t i = 0; i < s.g; ++i) {
        const scalar_t* xi = xp + s.at(p, i, mm, e0);
        const scalar_t* qi = qp + s.at(p, i, mm, e0);
        scalar_t* di = dp + s.at(p, i, mm, e0);
        for (int64_t e = 0; e < len; ++e)
          di[e] = coefficient * ((qi[e] - qMean[e]) / c.sigma[e] -
                                 c.deviation(xi, e) * qd[e] / (scalar_t(s.g) * c.sigma[e] * c.sigma[e] * c.sigma[e]));
      }
    });
  });
  if (dGradStat) *dGradStat = sumBlocks(partial, s, x.options(), 1.0 / double(s.g * s.k));
}

// x in the statistics' dtype (float32, or float64 for float64 input), contiguous.
at::Tensor statsInput(const at::Tensor& x) { return x.to(statsType(x)).contiguous(); }

struct StatisticGradCpuFunction : Function<StatisticGradCpuFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gradStat, const at::Tensor& x, int64_t parts, int64_t g) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({gradStat, x});
    ctx->saved_data["parts"] = parts;
    ctx->saved_data["g"] = g;
    const auto xs = statsInput(x);
    return statisticGradCpu(gradStat, xs, groupShape(xs, parts, g)).to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::autograd::GradMode::is_enabled(),
                "minibatchStddev has closed-form derivatives to second order only; use impl 'reference' for higher orders");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto &gradStat = saved[0], &x = saved[1];
    const auto xs = statsInput(x);
    const auto q = grads[0].to(xs.scalar_type()).contiguous();
    at::Tensor dGradStat, dx;
    statisticGradBackwardCpu(q, gradStat, xs, groupShape(xs, ctx->saved_data["parts"].toInt(), ctx->saved_data["g"].toInt()),
                             ctx->needs_input_grad(0) ? &dGradStat : nullptr, ctx->needs_input_grad(1) ? &dx : nullptr);
    if (dGradStat.defined()) dGradStat = dGradStat.to(gradStat.scalar_type());
    if (dx.defined()) dx = dx.to(x.scalar_type());
    return {dGradStat, dx, at::Tensor(), at::Tensor()};
  }
};

struct StatisticCpuFunction : Function<StatisticCpuFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t parts, int64_t g) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x});
    ctx->saved_data["parts"] = parts;
    ctx->saved_data["g"] = g;
    const auto xs = statsInput(x);
    return statisticCpu(xs, groupShape(xs, parts, g));  // [P, M]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto x = ctx->get_saved_variables()[0];
    return {StatisticGradCpuFunction::apply(grads[0], x, ctx->saved_data["parts"].toInt(), ctx->saved_data["g"].toInt()),
            at::Tensor(), at::Tensor()};
  }
};

// The statistic alone, one value per sample [N]: the extra map is this value at every pixel.
at::Tensor minibatchStatistic(const at::Tensor& x, int64_t groupSize, int64_t parts, OpsImpl impl, StddevKernels kernels) {
  TORCH_CHECK(x.dim() == 4, "minibatchStddev expects [N, C, H, W] but received ", x.sizes());
  TORCH_CHECK(parts >= 1 && x.size(0) % parts == 0, "minibatchStddev: ", x.size(0), " samples do not split into ",
              parts, " equal parts");
  const int64_t n = x.size(0) / parts;
  const int64_t g = std::min(groupSize, n);
  TORCH_CHECK(g > 0 && n % g == 0, "Expected a batch size divisible by the minibatch-stddev group size ", g,
              " but received ", n, ". Use a batch size that is a multiple of ", g,
              " or set minibatchStddevGroup to a divisor of it.");
  at::Tensor s;
  if (impl == OpsImpl::Reference)
    s = statisticReference(x, parts, g);
  else if (x.is_cpu() && kernels == StddevKernels::ForDevice)
    s = StatisticCpuFunction::apply(x, parts, g);
  else
    s = StatisticFunction::apply(x, parts, g);
  // [P, M] → one value per sample: sample (p, i, m) takes s[p, m].
  return s.to(x.scalar_type()).view({parts, 1, n / g}).expand({parts, g, n / g}).reshape({parts * n});
}

}  // namespace

at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize, int64_t parts, OpsImpl impl, StddevKernels kernels) {
  const auto s = minibatchStatistic(x, groupSize, parts, impl, kernels);
  return at::cat({x, s.view({-1, 1, 1, 1}).expand({x.size(0), 1, x.size(2), x.size(3)})}, 1);
}

}  // namespace progan
