// The execution choices every equalized layer of a network shares (NetworkConfig::layerSettings(),
// applied by applyLayerSettings in layers/equalized.h). Winograd and channels-last change only
// rounding; bfloat16 changes the arithmetic.
#pragma once
#include "layers/winograd.h"

namespace progan {

// Where a layer's convolutions run channels-last (NHWC): never, always, or on CUDA tensors only
// (`Auto`: cuDNN's tensor-core kernels want NHWC; oneDNN on the CPU ran the small preset's 8² and
// 16² steps at the same speed either way).
enum class ChannelsLastMode { Off, On, Auto };

struct LayerSettings {
  // Convolutions and dense layers multiply in bfloat16 (float32 accumulation).
  bool bfloat16 = false;
  WinogradMode winograd = WinogradMode::Off;
  ChannelsLastMode channelsLast = ChannelsLastMode::Off;
  // 1×1 convolutions (toRGB, fromRGB) as matrix products on the CPU (layers/pointwise_convolution.h);
  // off, they are ATen's convolutions (`impl: 'reference'`).
  bool pointwise = true;
  // A layer's bias and leaky ReLU as one pass (ops/bias_leaky_relu.h): on CUDA, and on the CPU with
  // the output scale of a layer that convolves by its unscaled weight; off, ATen adds the bias and
  // our leaky ReLU follows (`impl: 'reference'`).
  bool fusedActivation = true;
  // 3×3 weight gradients as nine matrix products (layers/gemm_weight_grad.h) instead of the
  // convolution library's kernel.
  bool gemmWeightGradient = false;
};

}  // namespace progan
