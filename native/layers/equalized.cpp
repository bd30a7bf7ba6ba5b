#include "layers/equalized.h"

#include <cmath>
#include <torch/nn/functional.h>

#include "layers/convolution.h"
#include "layers/leaky_relu.h"
#include "layers/matrix_product.h"
#include "layers/shifted_sum.h"
#include "layers/winograd.h"
#include "ops/bias_leaky_relu.h"

namespace progan {

EqualizedConv2dImpl::EqualizedConv2dImpl(int64_t inChannels, int64_t outChannels, int64_t kernel, Activation activation, double gain)
    : scale(gain / std::sqrt(double(inChannels * kernel * kernel))), kernel(kernel), activation(activation) {
  weight = register_parameter("weight", torch::randn({outChannels, inChannels, kernel, kernel}));
  bias = register_parameter("bias", torch::zeros({outChannels}));
}

namespace {
ConvGeometry same(int64_t padding, const ConvChoices& c) {
  ConvGeometry g{{1, 1}, {padding, padding}};
  g.channelsLast = c.channelsLast;
  return g;
}

// The geometry of the 3×3 convolution of x by w, padding 1.
ConvGeometry same3x3(const at::Tensor& x, const at::Tensor& w, const ConvChoices& c) {
  auto g = same(1, c);
  g.winograd = c.winograd == WinogradMode::On || (c.winograd == WinogradMode::Auto && winogradPreferred(x, w));
  g.gemmWeightGrad = c.gemmWeightGradient;
  return g;
}

// Stride 2, padding 1: the fused conv-downsample, or (transposed) the fused upsample-conv.
ConvGeometry stride2Pad1(bool transposed, const ConvChoices& c) {
  ConvGeometry g{{2, 2}, {1, 1}, {0, 0}, transposed};
  g.channelsLast = c.channelsLast;
  return g;
}

// Output-side scaling once the weight is the larger tensor. The factor 2 leans towards the weight
// side, whose multiply is shared by the layer's forward and both backward passes.
bool scalesOutput(const at::Tensor& weight, int64_t outputNumel) { return weight.numel() > 2 * outputNumel; }

int64_t convOutputNumel(const at::Tensor& x, const at::Tensor& weight, double spatialFactor) {
  if (x.dim() != 4) return 0;  // let the conv itself report the bad shape
  return int64_t(double(x.size(0) * weight.size(0) * x.size(2) * x.size(3)) * spatialFactor);
}

}  // namespace

at::Tensor upsampleConv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused, double weightScale,
                           const ConvChoices& choices) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3, "upsampleConv3x3 needs a 3×3 kernel");
  const auto type = x.scalar_type();
  if (!fused) {
    const auto up = at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
    const auto g = same3x3(up, weight, choices);
    return convolution(up, scaledKernel(weight, weightScale, g).to(type), bias, g);
  }
  // A transposed conv takes its kernel as [in, out, kh, kw]. shiftedSum maps each 3×3 block on its
  // own, so it builds that layout from the transposed 3×3 weight, in the layout the conv takes: a
  // transposed view of the 4×4 kernel instead made oneDNN copy it, and run in channels-last and
  // convert the activations back, in the forward and in every backward of the layer.
  return convolution(x, shiftedSum(weight.transpose(0, 1), /*flip=*/true, weightScale, choices.channelsLast).to(type), bias,
                     stride2Pad1(true, choices));
}

at::Tensor conv3x3Downsample(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused, double weightScale,
                             const ConvChoices& choices) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3, "conv3x3Downsample needs a 3×3 kernel");
  if (!fused) {
    const auto g = same3x3(x, weight, choices);
    auto y = at::avg_pool2d(convolution(x, scaledKernel(weight, weightScale, g).to(x.scalar_type()), {}, g), 2);
    return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
  }
  return convolution(x, shiftedSum(weight, /*flip=*/false, 0.25 * weightScale, choices.channelsLast).to(x.scalar_type()), bias,
                     stride2Pad1(false, choices));
}

namespace {
// y·scale + bias (broadcast over the channel dimension 1) as one op, in `outType`; bias may be undefined.
at::Tensor scaleAddBias(const at::Tensor& y, double scale, const at::Tensor& bias, at::ScalarType outType) {
  if (!bias.defined()) return y.scalar_type() == outType ? y * scale : y.to(outType) * scale;
  // The float32 bias promotes a bfloat16 y: cast, scale and bias in one pass.
  return at::add(y.dim() == 4 ? bias.view({1, -1, 1, 1}) : bias, y, scale);
}

// The three conv layouts of a layer: plain 3×3 / 1×1, upsample-conv, conv-downsample.
enum class ConvKind { Plain, Upsampled, Downsampled };

// conv(x, w·weightScale) + b for layer l's weight w, with its kernel and execution choices.
at::Tensor convolve(const EqualizedConv2dImpl& l, ConvKind kind, const at::Tensor& x, double weightScale, const at::Tensor& b, bool fused,
                    bool channelsLast) {
  const auto& w = l.weight;
  const ConvChoices choices{l.winograd, channelsLast, l.gemmWeightGradient};
  switch (kind) {
    case ConvKind::Upsampled: return upsampleConv3x3(x, w, b, fused, weightScale, choices);
    case ConvKind::Downsampled: return conv3x3Downsample(x, w, b, fused, weightScale, choices);
    default: {
      auto g = l.kernel == 3 ? same3x3(x, w, choices) : same(l.kernel / 2, choices);
      g.pointwise = l.kernel == 1 && l.pointwise;
      // Scaled before the cast to x's type, so that a bfloat16 conv rounds the weight once.
      return convolution(x, scaledKernel(w, weightScale, g).to(x.scalar_type()), b, g);
    }
  }
}

// Whether layer l's convolution of x runs as Winograd. Its kernel transform is cached per weight
// tensor (layers/winograd.cpp), so such a layer convolves by its own weight and scales the output:
// a weight scaled in every forward is a new tensor each time, transformed anew (small-preset 8²
// fading step, one trainer, interleaved: 48.4 against 49.7 ms).
bool runsWinograd(const EqualizedConv2dImpl& l, ConvKind kind, const at::Tensor& x, bool fused) {
  if (l.kernel != 3 || (kind != ConvKind::Plain && fused) || l.winograd == WinogradMode::Off) return false;
  return l.winograd == WinogradMode::On ? winogradFits(x, l.weight) : winogradPreferred(x, l.weight);
}

// Layer l's convolution of x, plus its bias, and its activation.
at::Tensor equalizedConv(const EqualizedConv2dImpl& l, ConvKind kind, const at::Tensor& x, bool fused) {
  const auto& w = l.weight;
  const auto type = w.scalar_type();
  const bool channelsLast = l.channelsLast == ChannelsLastMode::On || (l.channelsLast == ChannelsLastMode::Auto && x.is_cuda());
  const bool leaky = l.activation == Activation::LeakyRelu;
  const auto activated = [&](const at::Tensor& y) { return leaky ? lrelu(y) : y; };
  if (l.bfloat16 && type != at::kBFloat16) {
    // Reduced precision: the scale and bias go on the output, which returns to the weights' type there.
    // The weight is cast where the conv takes it, after a fused-scale kernel is summed in full precision.
    const auto y = convolve(l, kind, x.to(at::kBFloat16), 1.0, {}, fused, channelsLast);
    return activated(scaleAddBias(y, l.scale, l.bias, type));
  }
  const double spatial = kind == ConvKind::Upsampled ? 4.0 : kind == ConvKind::Downsampled ? 0.25 : 1.0;
  if (scalesOutput(w, convOutputNumel(x, w, spatial)) || runsWinograd(l, kind, x, fused)) {
    const auto y = convolve(l, kind, x, 1.0, {}, fused, channelsLast);
    if (leaky && l.fusedActivation && y.is_cpu() && l.bias.defined())
      return biasLeakyRelu(y, l.bias, OpsImpl::Auto, l.scale);  // scale, bias and activation in one pass
    return activated(scaleAddBias(y, l.scale, l.bias, type));
  }
  if (leaky && l.fusedActivation && x.is_cuda() && l.bias.defined())
    return biasLeakyRelu(convolve(l, kind, x, l.scale, {}, fused, channelsLast), l.bias);
  return activated(convolve(l, kind, x, l.scale, l.bias, fused, channelsLast));
}
}  // namespace

torch::Tensor EqualizedConv2dImpl::forward(const torch::Tensor& x) { return equalizedConv(*this, ConvKind::Plain, x, false); }

bool EqualizedConv2dImpl::prefersWinograd(const torch::Tensor& x, int64_t resolution) const {
  const int64_t channels = resolution <= 8 ? 128 : 256;
  return kernel == 3 && !bfloat16 && winograd != WinogradMode::Off && winogradPreferred(x, weight) && weight.size(0) >= channels &&
         weight.size(1) >= channels;
}

torch::Tensor EqualizedConv2dImpl::forwardUpsampled(const torch::Tensor& x, bool fused) {
  return equalizedConv(*this, ConvKind::Upsampled, x, fused);
}

torch::Tensor EqualizedConv2dImpl::forwardDownsampled(const torch::Tensor& x, bool fused) {
  return equalizedConv(*this, ConvKind::Downsampled, x, fused);
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
  const auto type = weight.scalar_type();
  TORCH_CHECK(x.dim() == 2 && x.size(1) == weight.size(1), "Expected dense-layer input of shape [N, ", weight.size(1),
              "] but received ", x.sizes());
  if (bfloat16 && type != at::kBFloat16)
    return scaleAddBias(matrixProduct(x.to(at::kBFloat16), weight.to(at::kBFloat16).t()), scale, b, type);
  if (!scalesOutput(weight, x.size(0) * weight.size(0))) {
    const auto y = matrixProduct(x, (weight * scale).t());
    return b.defined() ? y + b : y;
  }
  return scaleAddBias(matrixProduct(x, weight.t()), scale, b, type);
}

void applyLayerSettings(torch::nn::Module& root, const LayerSettings& settings) {
  for (auto& m : root.modules(/*include_self=*/false)) {
    if (auto* c = m->as<EqualizedConv2dImpl>()) {
      c->bfloat16 = settings.bfloat16;
      c->winograd = settings.winograd;
      c->channelsLast = settings.channelsLast;
      c->pointwise = settings.pointwise;
      c->fusedActivation = settings.fusedActivation;
      c->gemmWeightGradient = settings.gemmWeightGradient;
    }
    if (auto* l = m->as<EqualizedLinearImpl>()) l->bfloat16 = settings.bfloat16;
  }
}

}  // namespace progan
