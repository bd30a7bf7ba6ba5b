#include "networks/discriminator.h"

#include <ATen/ATen.h>

#include "layers/leaky_relu.h"
#include "layers/minibatch_stddev.h"
#include "ops/fade_in.h"

namespace progan {

namespace {
bool useStddev(const NetworkConfig& c) { return c.minibatchStddevGroup > 1; }
}  // namespace

DiscriminatorImpl::DiscriminatorImpl(const NetworkConfig& config) : config_(config) {
  const int64_t top = config.resolutionLog2();
  fromRgb_.resize(top + 1, nullptr);
  conv0_.resize(top + 1, nullptr);
  conv1_.resize(top + 1, nullptr);
  for (int64_t r = 2; r <= top; ++r)
    fromRgb_[r] = register_module("fromrgb_" + NetworkConfig::resolutionName(r), EqualizedConv2d(config.channels, config.nf(r - 1), 1, Activation::LeakyRelu));
  for (int64_t r = top; r >= 3; --r) {
    conv0_[r] = register_module("b" + NetworkConfig::resolutionName(r) + "_conv0", EqualizedConv2d(config.nf(r - 1), config.nf(r - 1), 3, Activation::LeakyRelu));
    conv1_[r] = register_module("b" + NetworkConfig::resolutionName(r) + "_conv1_down", EqualizedConv2d(config.nf(r - 1), config.nf(r - 2), 3, Activation::LeakyRelu));
  }
  const int64_t extra = useStddev(config) ? 1 : 0;
  conv1_[2] = register_module("b4x4_conv", EqualizedConv2d(config.nf(1) + extra, config.nf(1), 3, Activation::LeakyRelu));
  dense0_ = register_module("b4x4_dense0", EqualizedLinear(config.nf(1) * 16, config.nf(0)));
  dense1_ = register_module("b4x4_dense1", EqualizedLinear(config.nf(0), 1 + config.labelSize, 1.0));
  applyLayerSettings(*this, config.layerSettings());
}

torch::Tensor DiscriminatorImpl::fromRgb(const torch::Tensor& x, int64_t r) { return fromRgb_[r]->forward(x); }

torch::Tensor DiscriminatorImpl::block(const torch::Tensor& x, int64_t r, int64_t parts) {
  if (r == 2) {
    auto& conv = conv1_[2];
    at::Tensor y;
    if (!useStddev(config_))
      y = conv->forward(x);
    else
      y = conv->forward(minibatchStddev(x, config_.minibatchStddevGroup, parts, config_.opsImpl()));
    y = lrelu(dense0_->forward(y.flatten(1)));
    return dense1_->forward(y);
  }
  // Official D_paper (fused_scale=True by default): pool before bias and activation.
  const auto y = conv0_[r]->forward(x);
  auto& conv = conv1_[r];
  return conv->forwardDownsampled(y, config_.fuseAt(int64_t(1) << r, conv->prefersWinograd(y, int64_t(1) << r)));
}

torch::Tensor DiscriminatorImpl::forward(const torch::Tensor& images, int64_t resolution, const Alpha& alpha, int64_t parts) {
  TORCH_CHECK(NetworkConfig::isPowerOfTwo(resolution) && resolution <= config_.resolution,
              "Expected a resolution that is a power of two from 4 to ", config_.resolution, " but received ",
              resolution);
  TORCH_CHECK(alpha.value >= 0.0 && alpha.value <= 1.0, "Expected alpha in [0, 1] but received ", alpha.value);
  TORCH_CHECK(images.dim() == 4 && images.size(1) == config_.channels && images.size(2) == resolution &&
                  images.size(3) == resolution,
              "Expected images of shape [N, ", config_.channels, ", ", resolution, ", ", resolution,
              "] but received ", images.sizes());
  const int64_t top = NetworkConfig::log2Of(resolution);
  auto x = block(fromRgb(images, top), top, parts);
  if (top > 2 && alpha.value < 1.0) {
    // Fade-in: the old fromRGB on the 2×2-averaged image, blended with the new block's output.
    x = lerpBy(fromRgb(at::avg_pool2d(images, 2), top - 1), x, alpha);
  }
  for (int64_t r = top - 1; r >= 2; --r) x = block(x, r, parts);
  return x;
}

}  // namespace progan
