// Equalized learning rate (paper §4.1): weights are stored N(0, 1) and scaled at run time by
// gain / sqrt(fanIn), so Adam sees every layer at the same dynamic range. Biases are not scaled.
#pragma once
#include <torch/nn/module.h>

namespace progan {

constexpr double kSqrt2 = 1.4142135623730951;

class EqualizedConv2dImpl : public torch::nn::Module {
 public:
  EqualizedConv2dImpl(int64_t inChannels, int64_t outChannels, int64_t kernel, double gain = kSqrt2);
  torch::Tensor forward(const torch::Tensor& x);
  // The runtime-scaled kernel; the fused-scale paths build on it.
  torch::Tensor scaledWeight() const { return weight * scale; }

  torch::Tensor weight, bias;
  double scale;
  int64_t kernel;
};
TORCH_MODULE(EqualizedConv2d);

class EqualizedLinearImpl : public torch::nn::Module {
 public:
  // biasSize lets G's 4×4 dense layer carry one bias per channel (added after the reshape), as
  // the official code does; 0 means no bias here.
  EqualizedLinearImpl(int64_t inFeatures, int64_t outFeatures, double gain = kSqrt2, int64_t biasSize = -1);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias;
  double scale;
};
TORCH_MODULE(EqualizedLinear);

}  // namespace progan
