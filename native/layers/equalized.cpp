#include "layers/equalized.h"

#include <cmath>
#include <torch/nn/functional.h>

namespace progan {

EqualizedConv2dImpl::EqualizedConv2dImpl(int64_t inChannels, int64_t outChannels, int64_t kernel, double gain)
    : scale(gain / std::sqrt(double(inChannels * kernel * kernel))), kernel(kernel) {
  weight = register_parameter("weight", torch::randn({outChannels, inChannels, kernel, kernel}));
  bias = register_parameter("bias", torch::zeros({outChannels}));
}

torch::Tensor EqualizedConv2dImpl::forward(const torch::Tensor& x) {
  return at::conv2d(x, scaledWeight(), bias, 1, kernel / 2);
}

namespace {
// Σ of the four shifted copies of the zero-padded 3×3 kernel: [O, I, 4, 4].
at::Tensor shiftedSum(const at::Tensor& w) {
  const auto p = at::constant_pad_nd(w, {1, 1, 1, 1});
  return p.slice(2, 1).slice(3, 1) + p.slice(2, 0, -1).slice(3, 1) + p.slice(2, 1).slice(3, 0, -1) +
         p.slice(2, 0, -1).slice(3, 0, -1);
}
}  // namespace

torch::Tensor EqualizedConv2dImpl::forwardUpsampled(const torch::Tensor& x, bool fused) {
  TORCH_CHECK(kernel == 3, "forwardUpsampled needs a 3×3 convolution");
  if (!fused) return forward(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));
  // A transposed conv correlates with the flipped kernel and takes it as [in, out, kh, kw].
  const auto w = shiftedSum(scaledWeight()).flip({2, 3}).transpose(0, 1);
  return at::conv_transpose2d(x, w, bias, 2, 1);
}

torch::Tensor EqualizedConv2dImpl::forwardDownsampled(const torch::Tensor& x, bool fused) {
  TORCH_CHECK(kernel == 3, "forwardDownsampled needs a 3×3 convolution");
  if (!fused) return at::avg_pool2d(at::conv2d(x, scaledWeight(), {}, 1, 1), 2) + bias.view({1, -1, 1, 1});
  return at::conv2d(x, shiftedSum(scaledWeight()) * 0.25, bias, 2, 1);
}

EqualizedLinearImpl::EqualizedLinearImpl(int64_t inFeatures, int64_t outFeatures, double gain, int64_t biasSize)
    : scale(gain / std::sqrt(double(inFeatures))) {
  weight = register_parameter("weight", torch::randn({outFeatures, inFeatures}));
  const int64_t n = biasSize < 0 ? outFeatures : biasSize;
  if (n > 0) bias = register_parameter("bias", torch::zeros({n}));
}

torch::Tensor EqualizedLinearImpl::forward(const torch::Tensor& x) {
  // Only a full-size bias is added here; a per-channel bias is the caller's to add after reshaping.
  const bool fullBias = bias.defined() && bias.size(0) == weight.size(0);
  return at::linear(x, weight * scale, fullBias ? bias : torch::Tensor());
}

}  // namespace progan
