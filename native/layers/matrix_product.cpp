#include "layers/matrix_product.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <algorithm>
#include <optional>
#include <string_view>

namespace progan {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

bool columnMajor(const at::Tensor& t) { return !t.is_contiguous() && t.t().is_contiguous(); }

// oneDNN's product X·Wᵀ. MKL runs float32 GEMM on this kind of CPU (AMD) with its AVX2 kernels, about
// 140 GFLOP/s on 2 cores, where oneDNN's AVX-512 convolutions reach 300; for the paper's 8192×512
// dense layers oneDNN's product is 1.5–4× faster than either MKL order (16 rows: 0.88 vs 1.33 ms
// forward, 1.02 vs 2.49 ms input gradient, 0.64 vs 1.14 ms weight gradient). ATen registers it for
// its own graph fusions as mkldnn::_linear_pointwise and declares it in no public header, so it is
// looked up in the dispatcher; a libtorch without it falls back to MKL. It reads strided operands
// and keeps no packed copy of W (checked: a weight changed in place gives the new product).
using LinearPointwise = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, std::string_view,
                                   c10::List<std::optional<at::Scalar>>, std::optional<std::string_view>);

const std::optional<c10::TypedOperatorHandle<LinearPointwise>>& oneDnnLinear() {
  static const auto handle = []() -> std::optional<c10::TypedOperatorHandle<LinearPointwise>> {
    const auto op = c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
    if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CPU)) return std::nullopt;
    try {
      return op->typed<LinearPointwise>();
    } catch (const c10::Error&) {  // a libtorch whose schema differs: MKL it is
      return std::nullopt;
    }
  }();
  return handle;
}

// Only float32 on the CPU, and only products of 2²⁰ multiply-adds or more: below that oneDNN's
// per-call cost (14–23 µs against MKL's 1–2 µs, 16×128×1 to 16×128×128) outweighs its kernels, and
// bfloat16 products already run through oneDNN inside at::mm. Above it oneDNN was 1.0–3.5× faster
// in one process (small preset's 16×128×2048 products and their gradients, 65–112 µs against 74–308),
// and more inside a training step, where MKL's calls ran 2–4× slower than in a loop of their own:
// small-preset 4² steps 6–9 % faster than with the older rule (an operand or result of 2²⁰ elements),
// interleaved in one process.
bool takesOneDnn(const at::Tensor& a, const at::Tensor& b) {
  const double multiplyAdds = double(a.size(0)) * double(a.size(1)) * double(b.size(1));
  return a.is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
         multiplyAdds >= double(int64_t(1) << 20) &&
         oneDnnLinear().has_value();
}

// x [m, k] · wT [n, k]ᵀ → [m, n], contiguous.
at::Tensor oneDnnProduct(const at::Tensor& x, const at::Tensor& wT) {
  return oneDnnLinear()->call(x, wT, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

// `columnMajorOut`: the product is wanted with the layout of a transposed parameter (its gradient),
// computed as (Bᵀ·Aᵀ)ᵀ with no copy. Otherwise the faster order, returned contiguous.
at::Tensor productKernel(const at::Tensor& a, const at::Tensor& b, bool columnMajorOut) {
  if (takesOneDnn(a, b)) return columnMajorOut ? oneDnnProduct(b.t(), a).t() : oneDnnProduct(a, b.t());
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
