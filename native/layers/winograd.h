// The 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3) on the CPU:
// every 2×2 output tile is Aᵀ[(G·w·Gᵀ) ⊙ (Bᵀ·d·B)]A for its 4×4 input tile d, so the channel sums
// become 16 independent matrix products (one per point ξ of the 4×4 transform domain) with
// 16 multiply-adds per tile where the direct convolution has 36: 2.25× fewer.
//
// Why: oneDNN's direct 3×3 kernels already run at the machine's conv ceiling (350 GFLOP/s on a
// 2-core AVX-512 CPU at 512 channels, 8², batch 16), so fewer multiply-adds is what is left. The 16
// products run on oneDNN's matrix micro-kernel (brgemm) in blocks of our own, which reach that rate
// on the padded and transposed planes as they lie; MKL's batched product runs at half of it on AMD
// CPUs (AVX2 path). Transforms are memory passes, and a weight's transform is cached while the
// weight is unchanged. Paper 8² training step: 490 against 627 ms with `winograd: false`
// (interleaved, same process, before the micro-kernel: 390 against 438 ms with oneDNN's batched
// product in its place).
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

// Whether a network's unfused 3×3 convolutions run as Winograd: never, wherever winogradFits, or
// where winogradPreferred.
enum class WinogradMode { Off, On, Auto };

// What `winograd: 'auto'` takes: float32 layers of 128+ input and output channels. Whole paper-preset
// steps (2-core AVX-512 CPU, batch 16, interleaved in one process, ms per step, Winograd for every
// 512-channel layer against the direct kernels above the resolution named): 16² 1930 vs 2118, 32²
// 6928 vs 8649; per step against `winograd: false`, 4² 1.16×, 8² 1.23–1.30×. At 128 channels it lost
// while the transforms ran on one thread (our loops were built without OpenMP) and the products
// copied their operands; since, small-preset steps (128 channels up to 16²) with Winograd against
// without, interleaved: 4² 9.2 vs 10.7, 8² 40.0 vs 44.1, 16² 137.5 vs 147.7 ms; at 64 channels it
// still loses (32², 306 vs 288 ms). (Kernel timings in a
// bare process were misleading for large images: buffers of 32 MB and more are mapped afresh by
// glibc at every call and fault in page by page, which the training process's caching host
// allocator avoids.)
bool winogradPreferred(const at::Tensor& x, const at::Tensor& w);

// conv(x, w), padding 1.  x [N, C, H, W], w [O, C, 3, 3] → [N, O, H, W].
at::Tensor winogradConvolution(const at::Tensor& x, const at::Tensor& w);
// The input gradient of conv(·, w) for output gradient gradOut [N, O, H, W] → [N, C, H, W].
at::Tensor winogradInputGrad(const at::Tensor& gradOut, const at::Tensor& w);
// The weight gradient of conv(x, ·) for output gradient gradOut → [O, C, 3, 3].
at::Tensor winogradWeightGrad(const at::Tensor& x, const at::Tensor& gradOut);

}  // namespace progan
