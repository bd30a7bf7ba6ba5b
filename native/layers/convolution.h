// A 2-D convolution (plain, strided or transposed) whose derivatives, to any order, are again the
// three kernels every convolution has: forward, backward-data and backward-weights.
//
// ATen's own double backward (the gradient penalty differentiates D's input gradient once more)
// takes the weight gradient as a convolution of batch-transposed tensors whose kernel is the whole
// image (`_convolution_double_backward`). oneDNN runs that shape 2–3× slower than its
// backward-weights kernel computing the same sum: at paper channels and 8², 33 ms against 14 ms per
// 512→512 layer. Here that term is the backward-weights kernel itself. The function is the same;
// only the rounding differs (test/ops.test.ts compares it with ATen's autograd, to second order).
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace progan {

struct ConvGeometry {
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, outputPadding{0, 0};
  bool transposed = false;
  // A 3×3, stride-1, padding-1 convolution that winogradFits runs its three kernels as Winograd
  // F(2×2, 3×3) (layers/winograd.h); other geometries ignore the flag.
  bool winograd = false;
  // A 1×1, stride-1, unpadded convolution that pointwiseFits runs as matrix products on the CPU
  // (layers/pointwise_convolution.h); other geometries ignore the flag.
  bool pointwise = false;
  // A 3×3, stride-1, padding-1 convolution (not Winograd) computes its weight gradient as nine
  // matrix products over the padded activations (layers/gemm_weight_grad.h); other geometries
  // ignore the flag.
  bool gemmWeightGrad = false;
  // Every kernel takes its activations and weights channels-last (NHWC): cuDNN's tensor-core kernels
  // want NHWC and transpose NCHW tensors around each call otherwise (~15 % of a 32² step on an H100).
  // Tensors already channels-last pass through untouched, and the outputs stay channels-last. A
  // Winograd convolution (CPU) ignores the flag: its kernels take any layout and return the input's.
  bool channelsLast = false;
};

// t in the memory layout g's kernels take: channels-last where g asks for it (a no-op when t is in
// it already), as it is for the Winograd kernels, which lay out their operands themselves and cache
// a weight's transform by its storage. A layer's kernel arrives laid out already (scaledKernel,
// shiftedSum), so that the conversion happens once per forward rather than in each kernel.
at::Tensor laidOut(const at::Tensor& t, const ConvGeometry& g);

// w·scale in the layout g's kernels take, as one pass and one autograd op whose gradient returns in
// w's layout: what an equalized layer passes as its kernel. Channels-last otherwise costs a copy of
// the scaled kernel in every forward and one of its gradient (to the parameter's layout) in every
// backward: 0.7 ms of a 55 ms small-preset 8² CPU step with `channelsLast: true` (trace; the
// fused-scale kernels' copies, which shiftedSum now avoids, were another 1 ms).
at::Tensor scaledKernel(const at::Tensor& w, double scale, const ConvGeometry& g);

// at::convolution(x, w, b, stride, padding, dilation 1, transposed, outputPadding, groups 1); `b`
// may be undefined.
at::Tensor convolution(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeometry& geometry);

}  // namespace progan
