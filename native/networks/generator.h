// The ProGAN generator (official G_paper): a 4×4 block from the latent, then one block per
// resolution, each with its own toRGB so any resolution up to the final one can be output.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>

#include "layers/equalized.h"
#include "networks/network_config.h"

namespace progan {

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(const NetworkConfig& config);
  // latents [N, latentSize], labels [N, labelSize] (or undefined when unconditional).
  // alpha is the weight of the newest block at `resolution` (1: fully faded in).
  torch::Tensor forward(const torch::Tensor& latents, const torch::Tensor& labels, int64_t resolution, const Alpha& alpha);

  const NetworkConfig& config() const { return config_; }

 private:
  torch::Tensor block(const torch::Tensor& x, int64_t log2Res);
  torch::Tensor toRgb(const torch::Tensor& x, int64_t log2Res);

  NetworkConfig config_;
  EqualizedLinear dense_{nullptr};
  std::vector<EqualizedConv2d> conv0_, conv1_, toRgb_;  // indexed by log2(resolution)
};
TORCH_MODULE(Generator);

}  // namespace progan
