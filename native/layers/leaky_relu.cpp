#include "layers/leaky_relu.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

// g ↦ g·lrelu'(x): linear in g, piecewise constant in x (its derivative in x is zero almost everywhere).
struct LeakyReluGradFunction : Function<LeakyReluGradFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gradOut, const at::Tensor& x) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x});
    return at::leaky_relu_backward(gradOut, x, kLeakySlope, /*self_is_result=*/false);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    const auto x = ctx->get_saved_variables()[0];
    return {LeakyReluGradFunction::apply(grads[0], x), at::Tensor()};
  }
};

struct LeakyReluFunction : Function<LeakyReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x});
    return at::leaky_relu(x, kLeakySlope);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    return {LeakyReluGradFunction::apply(grads[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace

at::Tensor lrelu(const at::Tensor& x) { return LeakyReluFunction::apply(x); }

at::Tensor lreluGrad(const at::Tensor& grad, const at::Tensor& a) { return LeakyReluGradFunction::apply(grad, a); }

}  // namespace progan
