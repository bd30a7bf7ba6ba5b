#include "layers/pointwise_convolution.h"

#include <ATen/ATen.h>

#include "layers/narrow_product.h"

namespace progan {

namespace {

// t [N, K, H, W] as its pixels' rows [N·H·W, K]: a view of a channels-last tensor.
at::Tensor pixelRows(const at::Tensor& t) {
  return t.contiguous(at::MemoryFormat::ChannelsLast).permute({0, 2, 3, 1}).reshape({-1, t.size(1)});
}

// t [N, K, H, W] as per-image matrices [N, K, H·W]: a view of a contiguous tensor.
at::Tensor imageMatrices(const at::Tensor& t) { return t.contiguous().view({t.size(0), t.size(1), -1}); }

// rows [N·H·W, K] back to [N, K, H, W] (channels-last), or matrices [N, K, H·W] (contiguous).
at::Tensor fromRows(const at::Tensor& rows, const at::Tensor& like) {
  return rows.view({like.size(0), like.size(2), like.size(3), rows.size(1)}).permute({0, 3, 1, 2});
}
at::Tensor fromMatrices(const at::Tensor& m, const at::Tensor& like) {
  return m.view({like.size(0), m.size(1), like.size(2), like.size(3)});
}

at::Tensor kernelMatrix(const at::Tensor& w) { return w.reshape({w.size(0), w.size(1)}); }

// Whether a layer of w's outputs and inputs runs on the narrow loops.
bool takesNarrow(const at::Tensor& w) { return narrowFits(w.size(0), w.size(1), w.scalar_type()); }

// k [A, B] times every image's matrix m [N, B, P]: one batched product over k broadcast (a view).
// Not at::matmul, which for operands that require grad folds the batch into one product between
// transposing copies (its 1×1 products took 0.2–0.35 ms a call in a step's trace, bmm 0.05–0.15 ms).
at::Tensor timesEach(const at::Tensor& k, const at::Tensor& m) { return at::bmm(k.expand({m.size(0), k.size(0), k.size(1)}), m); }

}  // namespace

bool pointwiseFits(const at::Tensor& x, const at::Tensor& w) {
  const auto type = x.scalar_type();
  return x.is_cpu() && w.is_cpu() && x.dim() == 4 && w.dim() == 4 && w.size(2) == 1 && w.size(3) == 1 &&
         (type == at::kFloat || type == at::kDouble) && w.scalar_type() == type;
}

bool pointwisePays(const at::Tensor& w, int64_t contraction, int64_t pixels) {
  return takesNarrow(w) || contraction >= 16 || pixels <= 16 * 16;
}

at::Tensor pointwiseConvolution(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias, bool channelsLast) {
  const auto k = kernelMatrix(w);
  if (takesNarrow(w)) return narrowProduct(k, x, bias, channelsLast);  // the bias added in the same pass
  auto y = channelsLast ? fromRows(at::mm(pixelRows(x), k.t()), x) : fromMatrices(timesEach(k, imageMatrices(x)), x);
  return bias ? y.add_(bias->view({1, -1, 1, 1})) : y;
}

at::Tensor pointwiseInputGrad(const at::Tensor& gradOut, const at::Tensor& w, bool channelsLast) {
  const auto k = kernelMatrix(w);
  if (takesNarrow(w)) return narrowProduct(k.t(), gradOut, std::nullopt, channelsLast);
  if (channelsLast) return fromRows(at::mm(pixelRows(gradOut), k), gradOut);
  return fromMatrices(timesEach(k.t(), imageMatrices(gradOut)), gradOut);
}

at::Tensor pointwiseWeightGrad(const at::Tensor& x, const at::Tensor& gradOut, bool channelsLast) {
  if (narrowFits(gradOut.size(1), x.size(1), x.scalar_type())) return narrowGram(gradOut, x).view({gradOut.size(1), x.size(1), 1, 1});
  const auto product = channelsLast ? at::mm(pixelRows(gradOut).t(), pixelRows(x))
                                    : at::bmm(imageMatrices(gradOut), imageMatrices(x).transpose(1, 2)).sum(0);
  return product.view({gradOut.size(1), x.size(1), 1, 1});
}

}  // namespace progan
