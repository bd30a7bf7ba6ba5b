// The ProGAN discriminator (official D_paper): fromRGB at the input resolution, one block per
// resolution down to 4×4, then minibatch stddev, a conv and two dense layers.
#pragma once
#include <torch/nn/module.h>

#include "layers/equalized.h"
#include "networks/network_config.h"

namespace progan {

class DiscriminatorImpl : public torch::nn::Module {
 public:
  explicit DiscriminatorImpl(const NetworkConfig& config);
  // images [N, channels, R, R] at R = resolution; returns [N, 1 + labelSize] (score, label logits).
  // parts > 1: images stacks that many equal batches (reals and fakes in one pass); the minibatch
  // stddev then sees each batch on its own, so the result equals one call per batch.
  torch::Tensor forward(const torch::Tensor& images, int64_t resolution, const Alpha& alpha, int64_t parts = 1);

  const NetworkConfig& config() const { return config_; }

 private:
  torch::Tensor fromRgb(const torch::Tensor& x, int64_t log2Res);
  torch::Tensor block(const torch::Tensor& x, int64_t log2Res, int64_t parts);

  NetworkConfig config_;
  std::vector<EqualizedConv2d> fromRgb_, conv0_, conv1_;  // indexed by log2(resolution)
  EqualizedLinear dense0_{nullptr}, dense1_{nullptr};
};
TORCH_MODULE(Discriminator);

}  // namespace progan
