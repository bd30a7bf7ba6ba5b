#include "layers/matrix_product.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

bool columnMajor(const at::Tensor& t) { return !t.is_contiguous() && t.t().is_contiguous(); }

// `columnMajorOut`: the product is wanted with the layout of a transposed parameter (its gradient),
// computed as (Bᵀ·Aᵀ)ᵀ with no copy. Otherwise the faster order, returned contiguous.
at::Tensor productKernel(const at::Tensor& a, const at::Tensor& b, bool columnMajorOut) {
  if (columnMajorOut) return at::mm(b.t(), a.t()).t();
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const bool activationOutput = m * n < std::max(m * k, k * n);
  if (m < n && activationOutput) return at::mm(b.t(), a.t()).t().contiguous();
  return at::mm(a, b);
}

struct MatrixProductFunction : Function<MatrixProductFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, bool columnMajorOut) {
    ctx->set_materialize_grads(false);  // an undefined gradient ("none") is passed on, not multiplied
    ctx->save_for_backward({a, b});
    return productKernel(a, b, columnMajorOut);
  }
  // Each gradient takes its operand's layout: a weight used transposed gets its gradient without a
  // transposing copy.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& g = grads[0];
    if (!g.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1];
    at::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = MatrixProductFunction::apply(g, b.t(), columnMajor(a));
    if (ctx->needs_input_grad(1)) gb = MatrixProductFunction::apply(a.t(), g, columnMajor(b));
    return {ga, gb, at::Tensor()};
  }
};

}  // namespace

at::Tensor matrixProduct(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matrixProduct expects [m, k] and [k, n] matrices but received ",
              a.sizes(), " and ", b.sizes());
  return MatrixProductFunction::apply(a, b, false);
}

}  // namespace progan
