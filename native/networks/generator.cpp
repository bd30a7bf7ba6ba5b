#include "networks/generator.h"

#include <ATen/ATen.h>

#include "ops/bias_leaky_relu.h"
#include "ops/fade_in.h"
#include "ops/pixel_norm.h"

namespace progan {

GeneratorImpl::GeneratorImpl(const NetworkConfig& config) : config_(config) {
  const int64_t top = config.resolutionLog2();
  conv0_.resize(top + 1, nullptr);
  conv1_.resize(top + 1, nullptr);
  toRgb_.resize(top + 1, nullptr);
  const int64_t in = config.latentSize + config.labelSize;
  // Dense to nf(1)·16 with gain √2/4; its bias is per channel, added after the reshape to 4×4.
  dense_ = register_module("b4x4_dense", EqualizedLinear(in, config.nf(1) * 16, kSqrt2 / 4, config.nf(1)));
  conv1_[2] = register_module("b4x4_conv", EqualizedConv2d(config.nf(1), config.nf(1), 3, Activation::LeakyRelu));
  for (int64_t r = 3; r <= top; ++r) {
    conv0_[r] = register_module("b" + NetworkConfig::resolutionName(r) + "_conv0_up", EqualizedConv2d(config.nf(r - 2), config.nf(r - 1), 3, Activation::LeakyRelu));
    conv1_[r] = register_module("b" + NetworkConfig::resolutionName(r) + "_conv1", EqualizedConv2d(config.nf(r - 1), config.nf(r - 1), 3, Activation::LeakyRelu));
  }
  for (int64_t r = 2; r <= top; ++r)
    toRgb_[r] = register_module("torgb_" + NetworkConfig::resolutionName(r), EqualizedConv2d(config.nf(r - 1), config.channels, 1, Activation::Linear, 1.0));
  applyLayerSettings(*this, config.layerSettings());
}

torch::Tensor GeneratorImpl::block(const torch::Tensor& x, int64_t r) {
  const double eps = config_.pixelNormEpsilon;
  const auto impl = config_.opsImpl();
  if (r == 2) {
    const auto dense = dense_->forward(x).view({x.size(0), config_.nf(1), 4, 4});
    const auto y = pixelNorm(biasLeakyRelu(dense, dense_->bias, impl), eps, impl);
    return pixelNorm(conv1_[2]->forward(y), eps, impl);
  }
  auto& conv = conv0_[r];
  const auto y = pixelNorm(conv->forwardUpsampled(x, config_.fuseAt(int64_t(1) << r, conv->prefersWinograd(x, int64_t(1) << r))), eps, impl);
  return pixelNorm(conv1_[r]->forward(y), eps, impl);
}

torch::Tensor GeneratorImpl::toRgb(const torch::Tensor& x, int64_t r) { return toRgb_[r]->forward(x); }

torch::Tensor GeneratorImpl::forward(const torch::Tensor& latents, const torch::Tensor& labels, int64_t resolution,
                                     const Alpha& alpha) {
  TORCH_CHECK(latents.dim() == 2 && latents.size(1) == config_.latentSize, "Expected latents of shape [N, ",
              config_.latentSize, "] but received ", latents.sizes());
  auto x = latents;
  if (config_.labelSize > 0) {
    TORCH_CHECK(labels.defined() && labels.dim() == 2 && labels.size(0) == latents.size(0) &&
                    labels.size(1) == config_.labelSize,
                "Expected labels of shape [", latents.size(0), ", ", config_.labelSize, "] but received ",
                labels.defined() ? c10::str(labels.sizes()) : std::string("none"));
    x = at::cat({x, labels.to(x.scalar_type())}, 1);
  }
  if (config_.normalizeLatents) x = pixelNorm(x, config_.pixelNormEpsilon, config_.opsImpl());
  const int64_t target = NetworkConfig::log2Of(resolution);
  TORCH_CHECK(NetworkConfig::isPowerOfTwo(resolution) && target <= config_.resolutionLog2(),
              "Expected a resolution that is a power of two from 4 to ", config_.resolution, " but received ",
              resolution);
  TORCH_CHECK(alpha.value >= 0.0 && alpha.value <= 1.0, "Expected alpha in [0, 1] but received ", alpha.value);

  x = block(x, 2);
  for (int64_t r = 3; r < target; ++r) x = block(x, r);
  torch::Tensor out;
  if (target == 2) {
    out = toRgb(x, 2);
  } else {
    auto y = block(x, target);
    out = toRgb(y, target);
    if (alpha.value < 1.0) {
      // Fade-in (paper §3, Fig. 2): the old toRGB upsampled, blended with the new block's output.
      out = upsampleLerp(toRgb(x, target - 1), out, alpha, config_.opsImpl());
    }
  }
  return config_.tanhOutput ? at::tanh(out) : out;
}

}  // namespace progan
