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
