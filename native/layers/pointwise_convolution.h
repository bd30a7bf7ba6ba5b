// The 1×1 convolutions of toRGB and fromRGB on the CPU, in one of three forms:
//  - a side of at most 4 channels (every toRGB and fromRGB: 3 colour channels), NCHW or
//    channels-last: loops of our own that keep the narrow side in registers (narrow_product.h);
//  - channels-last otherwise: the [N·H·W, C] pixel rows times the kernel's transpose, one product;
//  - NCHW otherwise: each image's [O, C] kernel times its [C, H·W] pixels, one batched product.
//
// Why: oneDNN runs these 3→C and C→3 convolutions an order of magnitude below its rate for the
// 3×3 ones (each is a few hundred thousand multiply-adds at the small resolutions, reordered to
// blocked layouts and back around every call): 85–180 µs a call in a loop of their own at 4²–8²
// against 17–50 µs as ATen's products (batch 16, 2 threads), and 0.15–0.84 ms a call in a training
// step's trace, where a small-preset 8² fading step makes 26 of them. In that step's trace (4
// profiled steps, small preset, fading) they took 2.0–3.5 ms a step as batched products and
// 0.8 ms as the narrow loops; at 32² and 64², where the 3-channel forward and input gradient had
// stayed oneDNN's, those took 4.5 and 9.9 ms a step against 2.2 and 5.9 ms as narrow loops.
//
// The same function: every form sums the same terms over the channels, in another order.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace progan {

// Whether conv(x, w) (stride 1, no padding is the caller's promise) runs as products: w 1×1, CPU
// float32 or float64 for both.
bool pointwiseFits(const at::Tensor& x, const at::Tensor& w);

// Whether a map whose products sum over `contraction` terms (C for the forward, O for the input
// gradient) of w pays in the forms above on images of `pixels` pixels. The narrow loops always do.
// As products, not from 3 channels above 16×16: MKL then writes the 128-channel result of a 3-term
// product at half oneDNN's speed (32², batch 16: 0.93 against 0.68 ms forward, 0.86 against 0.65 ms
// input gradient; 64²: 4.1 against 2.4 ms), where every other map was 1.4–3.3× faster as products
// at 16²–64². The weight gradient, a sum over every pixel of the batch, always pays.
bool pointwisePays(const at::Tensor& w, int64_t contraction, int64_t pixels);

// conv(x, w) + bias.  x [N, C, H, W], w [O, C, 1, 1] → [N, O, H, W], channels-last when asked,
// else contiguous.
at::Tensor pointwiseConvolution(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias, bool channelsLast);
// The input gradient of conv(·, w) for gradOut [N, O, H, W] → [N, C, H, W], laid out as above.
at::Tensor pointwiseInputGrad(const at::Tensor& gradOut, const at::Tensor& w, bool channelsLast);
// The weight gradient of conv(x, ·) for gradOut → [O, C, 1, 1].
at::Tensor pointwiseWeightGrad(const at::Tensor& x, const at::Tensor& gradOut, bool channelsLast);

}  // namespace progan
