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

at::Tensor upsampleConv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3, "upsampleConv3x3 needs a 3×3 kernel");
  if (!fused) return at::conv2d(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}), weight, bias, 1, 1);
  // A transposed conv correlates with the flipped kernel and takes it as [in, out, kh, kw].
  return at::conv_transpose2d(x, shiftedSum(weight).flip({2, 3}).transpose(0, 1), bias, 2, 1);
}

at::Tensor conv3x3Downsample(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3, "conv3x3Downsample needs a 3×3 kernel");
  if (!fused) {
    auto y = at::avg_pool2d(at::conv2d(x, weight, {}, 1, 1), 2);
    return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
  }
  return at::conv2d(x, shiftedSum(weight) * 0.25, bias, 2, 1);
}

torch::Tensor EqualizedConv2dImpl::forwardUpsampled(const torch::Tensor& x, bool fused) {
  return upsampleConv3x3(x, scaledWeight(), bias, fused);
}

torch::Tensor EqualizedConv2dImpl::forwardDownsampled(const torch::Tensor& x, bool fused) {
  return conv3x3Downsample(x, scaledWeight(), bias, fused);
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
