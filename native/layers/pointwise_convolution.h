// The 1×1 convolutions of toRGB and fromRGB on the CPU as matrix products: each image's [O, C]
// kernel times its [C, H·W] pixels (one batched product) for an NCHW tensor, or the [N·H·W, C]
// pixel rows times the kernel's transpose (one product) for a channels-last one.
//
// Why: oneDNN runs these 3→C and C→3 convolutions an order of magnitude below its rate for the
// 3×3 ones (each is a few hundred thousand multiply-adds at the small resolutions, reordered to
// blocked layouts and back around every call): 85–180 µs a call in a loop of their own at 4²–8²
// against 17–50 µs as ATen's products (batch 16, 2 threads), and 0.15–0.84 ms a call in a training
// step's trace, where a small-preset 8² fading step makes 16 of them (~7 ms of a 58 ms step there;
// 1.9 ms as products). Whole steps, interleaved in one process: small 4² 5–7 % faster, 8² 1–4 %.
//
// The same function: the products sum the same terms over the channels, in another order.
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// Whether conv(x, w) (stride 1, no padding is the caller's promise) runs as products: w 1×1, CPU
// float32 or float64 for both.
bool pointwiseFits(const at::Tensor& x, const at::Tensor& w);

// Whether a map whose products sum over `contraction` terms (C for the forward, O for the input
// gradient) pays as products on images of `pixels` pixels. Not from 3 channels above 16×16: MKL
// then writes the 128-channel result of a 3-term product at half oneDNN's speed (32², batch 16:
// 0.93 against 0.68 ms forward, 0.86 against 0.65 ms input gradient; 64²: 4.1 against 2.4 ms),
// where every other map was 1.4–3.3× faster as products at 16²–64². The weight gradient, a sum
// over every pixel of the batch, always pays.
bool pointwiseProductPays(int64_t contraction, int64_t pixels);

// conv(x, w).  x [N, C, H, W], w [O, C, 1, 1] → [N, O, H, W], channels-last when asked, else
// contiguous.
at::Tensor pointwiseConvolution(const at::Tensor& x, const at::Tensor& w, bool channelsLast);
// The input gradient of conv(·, w) for gradOut [N, O, H, W] → [N, C, H, W], laid out as above.
at::Tensor pointwiseInputGrad(const at::Tensor& gradOut, const at::Tensor& w, bool channelsLast);
// The weight gradient of conv(x, ·) for gradOut → [O, C, 1, 1].
at::Tensor pointwiseWeightGrad(const at::Tensor& x, const at::Tensor& gradOut, bool channelsLast);

}  // namespace progan
