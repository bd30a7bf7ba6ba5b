// The kernel of the fused-scale convolutions (official upscale2d_conv2d / conv2d_downscale2d): each
// 3×3 kernel becomes the 4×4 sum of its four shifted, zero-padded copies,
//   K[a][b] = ((w[a][b] + w[a−1][b]) + w[a][b−1]) + w[a−1][b−1]   (out-of-range terms 0),
// times `scale`, with K reversed in both spatial dimensions when `flip` (a transposed conv
// correlates with the flipped kernel). A linear map, differentiable to any order.
//
// Padding and adding four strided views took 15 ms forward and 70 ms with backward per 512×512
// kernel on 2 cores; the CPU kernel here is one pass (same additions in the same order, so the same
// float32 and bfloat16 rounding as those views). Other devices use one [O·I, 9] × [9, 16] product.
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// w: [O, I, 3, 3] (any strides) → [O, I, 4, 4], channels-last (NHWC) when asked. On the CPU the
// kernel is written in that layout and its gradient returns in w's, so a conv that takes its kernel
// channels-last copies neither; other devices convert the product's result.
at::Tensor shiftedSum(const at::Tensor& w, bool flip, double scale, bool channelsLast = false);

}  // namespace progan
