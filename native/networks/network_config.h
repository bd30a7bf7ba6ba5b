// The architecture knobs of PAPER.md, resolved and validated in TypeScript (lib/options.ts),
// trusted here.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "layers/layer_settings.h"
#include "layers/winograd.h"
#include "ops/fade_in.h"

namespace progan {

struct NetworkConfig {
  int64_t resolution = 1024;        // final resolution, a power of two in [4, 1024]
  int64_t latentSize = 512;
  int64_t fmapBase = 8192;
  double fmapDecay = 1.0;
  int64_t fmapMax = 512;
  int64_t channels = 3;
  int64_t labelSize = 0;            // 0: unconditional
  bool tanhOutput = false;          // official default: linear
  int64_t minibatchStddevGroup = 4; // 0 or 1 disables the layer
  bool normalizeLatents = true;
  double pixelNormEpsilon = 1e-8;
  // Fused-scale convolutions (same function, fewer FLOPs): 0 never, 1 always, 2 auto.
  int fusedScale = 2;
  // Winograd F(2×2, 3×3) for the unfused 3×3 convolutions (layers/winograd.h): 0 never, 1 always, 2 auto.
  int winograd = 2;
  WinogradMode winogradMode() const {
    return winograd == 0 ? WinogradMode::Off : winograd == 1 ? WinogradMode::On : WinogradMode::Auto;
  }
  // Fused fade-in, gradient-penalty, bias + leaky ReLU and pixel-norm kernels and the 1×1
  // convolutions' products (auto), or their ATen references (parity, benchmarks).
  bool referenceOps = false;
  OpsImpl opsImpl() const { return referenceOps ? OpsImpl::Reference : OpsImpl::Auto; }
  // The 3×3 convolutions' weight gradients (layers/gemm_weight_grad.h): 0 the library's kernel, 1 as
  // nine matrix products, 2 auto (the library's, until the products are measured faster on a GPU).
  int weightGradient = 2;
  // Convolutions and dense layers multiply in bfloat16; everything else stays in the weights' type.
  bool bfloat16 = false;
  // Convolutions in channels-last layout (layers/equalized.h ChannelsLastMode): 0 never, 1 always, 2 auto (CUDA).
  int channelsLast = 2;

  LayerSettings layerSettings() const {
    const auto layout = channelsLast == 0 ? ChannelsLastMode::Off : channelsLast == 1 ? ChannelsLastMode::On : ChannelsLastMode::Auto;
    return {bfloat16, winogradMode(), layout, !referenceOps, !referenceOps, weightGradient == 1};
  }

  // 'auto' fuses where it measured faster on the CPU: every block from 8×8 outputs (G) / inputs (D)
  // up. At 8×8 the step took 5-8 % less CPU time at paper channels and the same at 128 channels
  // (interleaved runs, `npm run bench`'s fusedScale column); GPUs are not measured yet and follow.
  // Except where the unfused 3×3 layer runs as Winograd (`layerPrefersWinograd`): its 16 products
  // then do the fused kernel's multiply-adds at the rate of oneDNN's matrix product instead of its
  // stride-2 kernels'. Paper 8² step, 3 interleaved rounds: 509 ms unfused against 549 fused; at 16²
  // 2125 against 2174.
  bool fuseAt(int64_t resolution, bool layerPrefersWinograd) const {
    return fusedScale == 1 || (fusedScale == 2 && resolution >= 8 && !layerPrefersWinograd);
  }

  // Feature maps at a network stage (official nf()).
  int64_t nf(int64_t stage) const {
    const double v = std::floor(double(fmapBase) / std::pow(2.0, double(stage) * fmapDecay));
    return std::min<int64_t>(int64_t(v), fmapMax);
  }
  int64_t resolutionLog2() const { return log2Of(resolution); }

  static int64_t log2Of(int64_t r) {
    int64_t l = 0;
    while ((int64_t(1) << l) < r) ++l;
    return l;
  }
  static bool isPowerOfTwo(int64_t r) { return r >= 4 && (r & (r - 1)) == 0; }
  // "8x8" for log2 = 3: the resolution part of the official layer names.
  static std::string resolutionName(int64_t log2Res) {
    const auto r = std::to_string(int64_t(1) << log2Res);
    return r + "x" + r;
  }
};

}  // namespace progan
