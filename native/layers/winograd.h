// The 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3) on the CPU:
// every 2×2 output tile is Aᵀ[(G·w·Gᵀ) ⊙ (Bᵀ·d·B)]A for its 4×4 input tile d, so the channel sums
// become 16 independent matrix products (one per point ξ of the 4×4 transform domain) with
// 16 multiply-adds per tile where the direct convolution has 36: 2.25× fewer.
//
// Why: oneDNN's direct 3×3 kernels already run at the machine's conv ceiling (350 GFLOP/s on a
// 2-core AVX-512 CPU at 512 channels, 8², batch 16), so fewer multiply-adds is what is left. The 16
// products go to oneDNN's batched matrix product, which reaches the same rate; MKL's batched product
// runs at half of it on AMD CPUs (AVX2 path). Transforms and layout copies are memory passes, and a
// weight's transform is cached while the weight is unchanged. Paper 8² training step: 490 against
// 627 ms with `winograd: false` (interleaved, same process).
//
// The same function: Winograd's identity is exact in real arithmetic, only the rounding differs
// (test/ops.test.ts compares the three maps and their derivatives with ATen's convolution).
// The three maps are the forward, backward-data (a forward with the kernel mirrored and its channel
// axes swapped, which in the transform domain is a permutation of ξ and a transposed product) and
// backward-weights (the adjoint of the output transform on the output gradient, 16 products, and
// the adjoint of the kernel transform).
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// Whether the Winograd kernels take conv(x, w) (3×3, stride 1, padding 1 is the caller's promise):
// CPU float32 or float64, contiguous-able 4-D tensors.
bool winogradFits(const at::Tensor& x, const at::Tensor& w);

// Whether a network's unfused 3×3 convolutions run as Winograd: never; wherever winogradFits
// (all three kernels); or where winogradPreferred (the weight gradient only where
// winogradWeightGradPreferred).
enum class WinogradMode { Off, On, Auto };

// What `winograd: 'auto'` takes for the forward and backward-data kernels: float32, 256+ input and
// output channels, at most 16×16 pixels. Measured on a 2-core AVX-512 CPU, batch 16, against oneDNN's
// direct kernels (forward / backward-data): 512 channels 1.44 / 1.33× at 4², 1.57 / 1.53× at 8²,
// 1.64 / 1.65× at 16²; 256 channels 1.29 / 1.23× at 16²; no gain at 32² and up. At 128 channels and
// below it lost at every size (0.5–0.97×): the transforms move 4× the activations' bytes for a
// quarter of the 512-channel products or less.
// `upsampled`: the convolution's input is x upsampled ×2 (G's conv0_up asking before it upsamples).
bool winogradPreferred(const at::Tensor& x, const at::Tensor& w, bool upsampled = false);
// The weight gradient pays only where its products dwarf the two kernel-sized transforms (the
// 16-point gradient is 1.8× the weight): 256+ tiles in one pass. 512 channels: 1.13× at 8², 0.78×
// at 4² (64 tiles), 0.95× at 16² (1,024 tiles, several passes).
bool winogradWeightGradPreferred(const at::Tensor& x, int64_t outChannels);

// conv(x, w), padding 1.  x [N, C, H, W], w [O, C, 3, 3] → [N, O, H, W].
at::Tensor winogradConvolution(const at::Tensor& x, const at::Tensor& w);
// The input gradient of conv(·, w) for output gradient gradOut [N, O, H, W] → [N, C, H, W].
at::Tensor winogradInputGrad(const at::Tensor& gradOut, const at::Tensor& w);
// The weight gradient of conv(x, ·) for output gradient gradOut → [O, C, 3, 3].
at::Tensor winogradWeightGrad(const at::Tensor& x, const at::Tensor& gradOut);

}  // namespace progan
