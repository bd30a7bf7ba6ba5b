// The weight gradient of a 3×3, stride-1, padding-1 convolution as nine matrix products, one per
// kernel tap, over the zero-padded channels-last activations:
//
//   gw[o, i, ky, kx] = Σ_{n,h,w} gO[n, o, h, w] · xpad[n, h + ky, w + kx, i]
//
// Lay gO out on the padded (H+2)×(W+2) grid too (at rows 0…H−1, columns 0…W−1, zeros elsewhere) and
// flatten both to rows p = (n·(H+2) + h)·(W+2) + w: the tap (ky, kx) then reads row
// p + ky·(W+2) + kx of xpad, a constant offset, so each tap is one product of contiguous matrices,
// [O, P] × [P, I], with P ≈ N·(H+2)·(W+2) terms in every sum.
//
// Why: cuDNN's 3×3 weight-gradient kernel is persistent and tiles only the [O, 9·I] output, each
// tile summing over the whole batch. A 512-channel layer has 144 tiles of 128×128 for an H100's
// 132 SMs, so 12 run in a second round while 120 SMs idle, and the kernel ran at half the
// forward's rate (32² step, run A: 2.73 against 1.43 ms for the same multiply-adds). cuBLAS
// splits a product's long sum across the GPU instead. The padding costs (H+2)(W+2)/(HW) of the
// multiply-adds: 1.13× at 32², 1.27× at 16².
//
// Same function, summed in another order. Device-agnostic (ATen products); on the CPU oneDNN's own
// kernel is faster, so only `weightGradient: 'gemm'` takes it there (tests exercise the path).
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// Whether gemmWeightGrad takes x and w: a 3×3 kernel over x's channels, floating-point 4-D tensors of
// one type (stride 1 and padding 1 are the caller's to check).
bool gemmWeightGradFits(const at::Tensor& x, const at::Tensor& w);

// x [N, I, H, W], gradOut [N, O, H, W] (any layouts) → [O, I, 3, 3], channels-last (the layout a
// channels-last layer's weight has, so the gradient accumulates without a copy). On CUDA the
// float32 products use TF32 exactly where cuDNN's convolutions do (its default), so the path runs
// the arithmetic of the kernel it replaces.
at::Tensor gemmWeightGrad(const at::Tensor& x, const at::Tensor& gradOut);

}  // namespace progan
