// Equalized learning rate (paper §4.1): weights are stored N(0, 1) and scaled at run time by
// gain / sqrt(fanIn), so Adam sees every layer at the same dynamic range. Biases are not scaled.
// The scale multiplies whichever is smaller, the weight or the layer's output (conv(x, w)·c equals
// conv(x, w·c)): at 4² a 512×512×3×3 kernel is 18× its output at batch 16, at 64² the reverse, and
// both multiplies are paid again in every backward and in the gradient penalty's double backward.
#pragma once
#include <torch/nn/module.h>

#include "layers/layer_settings.h"
#include "layers/winograd.h"

namespace progan {

// How a layer's convolutions run: the execution choices of LayerSettings that reach a convolution.
struct ConvChoices {
  WinogradMode winograd = WinogradMode::Off;
  // Every convolution runs channels-last (ConvGeometry::channelsLast).
  bool channelsLast = false;
  // An unfused 3×3 convolution's weight gradient runs as matrix products (ConvGeometry::gemmWeightGrad).
  bool gemmWeightGradient = false;
};

// Nearest ×2 upsample then a 3×3 conv (padding 1). Fused: one stride-2 transposed conv whose 4×4
// kernel sums the four shifted copies of the padded 3×3 kernel (official upscale2d_conv2d): the
// same function with 2.25× fewer multiply-adds.
// `weightScale` multiplies the weight (the equalized layers' runtime scale), inside the pass that
// lays out the conv's kernel.
at::Tensor upsampleConv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused,
                           double weightScale = 1.0, const ConvChoices& choices = {});
// A 3×3 conv then 2×2 average pool, the bias added after the pool. Fused: one stride-2 4×4 conv
// with the kernel built the same way ×0.25 (official conv2d_downscale2d).
// Both convolve in x's type: the weight is cast to it after the fused kernel is built, so a
// bfloat16 run sums the four shifted copies in the weight's full precision.
at::Tensor conv3x3Downsample(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool fused,
                             double weightScale = 1.0, const ConvChoices& choices = {});

constexpr double kSqrt2 = 1.4142135623730951;

// Reduced-precision multiplies: with `bfloat16` set (and float32 or float64 weights), a layer casts its
// input and weight, convolves or multiplies (float32 accumulation
// inside oneDNN / cuDNN), and its output returns to the weights' type in the same op that scales it and
// adds the bias. Every other op of the network thus sees float32, and autograd casts the gradients back.

// What follows a layer's bias: nothing (G's toRGB) or the leaky ReLU (every other convolution).
enum class Activation { Linear, LeakyRelu };

class EqualizedConv2dImpl : public torch::nn::Module {
 public:
  EqualizedConv2dImpl(int64_t inChannels, int64_t outChannels, int64_t kernel, Activation activation, double gain = kSqrt2);
  // The layer's output: its activation of conv(x, w·scale) + bias. With the leaky ReLU (and float
  // weights, fusedActivation on), the bias and activation are one kernel (ops/bias_leaky_relu.h)
  // after a convolution without bias: on CUDA, and on the CPU where the convolution runs by the
  // unscaled weight (Winograd, or a weight larger than the output), with the scale in the same pass;
  // elsewhere ATen adds the bias (oneDNN inside its convolution) and lrelu follows.
  torch::Tensor forward(const torch::Tensor& x);
  // upsampleConv3x3 / conv3x3Downsample with this layer's scaled weight, bias and activation.
  torch::Tensor forwardUpsampled(const torch::Tensor& x, bool fused);
  torch::Tensor forwardDownsampled(const torch::Tensor& x, bool fused);
  // Whether fusedScale 'auto' leaves this upsample / downsample layer, convolving at `resolution`,
  // unfused, for its 3×3 convolution to run as Winograd: where 'auto' Winograd takes it and it has
  // 256+ channels, or 128+ at 8². Whole steps, interleaved in one process (2-core AVX-512 CPU,
  // batch 16, median / min ms): paper 8² fading 405 unfused against 442 fused; at 128 channels
  // (small preset), since scale, bias and leaky ReLU run as one pass after a Winograd layer, 8²
  // fading 46.0 / 41.8 unfused against 48.4 / 46.9, 8² stable 41.7 / 39.8 against 43.5 / 40.6,
  // while at 16² fused still won, 145.6 / 136.8 against 159.2 / 150.6.
  bool prefersWinograd(const torch::Tensor& x, int64_t resolution) const;

  torch::Tensor weight, bias;
  double scale;
  int64_t kernel;
  Activation activation;
  bool bfloat16 = false;
  bool fusedActivation = true;
  bool gemmWeightGradient = false;
  WinogradMode winograd = WinogradMode::Off;
  ChannelsLastMode channelsLast = ChannelsLastMode::Off;
  bool pointwise = true;
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
  bool bfloat16 = false;
};
TORCH_MODULE(EqualizedLinear);

// Applies `settings` to every equalized layer under `root`.
void applyLayerSettings(torch::nn::Module& root, const LayerSettings& settings);

}  // namespace progan
