#include "layers/equalized.h"

#include <cmath>
#include <torch/nn/functional.h>

namespace progan {

EqualizedConv2dImpl::EqualizedConv2dImpl(int64_t inChannels, int64_t outChannels, int64_t kernel, double gain)
    : scale(gain / std::sqrt(double(inChannels * kernel * kernel))), kernel(kernel) {
  weight = register_parameter("weight", torch::randn({outChannels, inChannels, kernel, kernel}));
  bias = register_parameter("bias", torch::zeros({outChannels}));
}

namespace {
// Output-side scaling once the weight is the larger tensor. The factor 2 leans towards the weight
// side, whose multiply is shared by the layer's forward and both backward passes.
bool scalesOutput(const at::Tensor& weight, int64_t outputNumel) { return weight.numel() > 2 * outputNumel; }

int64_t convOutputNumel(const at::Tensor& x, const at::Tensor& weight, double spatialFactor) {
  if (x.dim() != 4) return 0;  // let the conv itself report the bad shape
  return int64_t(double(x.size(0) * weight.size(0) * x.size(2) * x.size(3)) * spatialFactor);
}

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

at::Tensor scaleAddBias(const at::Tensor& y, double scale, const at::Tensor& bias) {
  if (!bias.defined()) return y * scale;
  return at::add(y.dim() == 4 ? bias.view({1, -1, 1, 1}) : bias, y, scale);
}

torch::Tensor EqualizedConv2dImpl::forward(const torch::Tensor& x) {
  if (!scalesOutput(weight, convOutputNumel(x, weight, 1.0))) return at::conv2d(x, scaledWeight(), bias, 1, kernel / 2);
  return scaleAddBias(at::conv2d(x, weight, {}, 1, kernel / 2), scale, bias);
}

torch::Tensor EqualizedConv2dImpl::forwardUpsampled(const torch::Tensor& x, bool fused) {
  if (!scalesOutput(weight, convOutputNumel(x, weight, 4.0))) return upsampleConv3x3(x, scaledWeight(), bias, fused);
  return scaleAddBias(upsampleConv3x3(x, weight, {}, fused), scale, bias);
}

torch::Tensor EqualizedConv2dImpl::forwardDownsampled(const torch::Tensor& x, bool fused) {
  if (!scalesOutput(weight, convOutputNumel(x, weight, 0.25))) return conv3x3Downsample(x, scaledWeight(), bias, fused);
  return scaleAddBias(conv3x3Downsample(x, weight, {}, fused), scale, bias);
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
  const auto b = fullBias ? bias : torch::Tensor();
  const int64_t outputNumel = x.dim() == 2 ? x.size(0) * weight.size(0) : 0;
  if (!scalesOutput(weight, outputNumel)) return at::linear(x, weight * scale, b);
  return scaleAddBias(at::linear(x, weight), scale, b);
}

}  // namespace progan
