// The 1×1 convolutions with an image's few colour channels on one side (toRGB's C→3, fromRGB's
// 3→C, and their gradients) on the CPU, as loops of our own over NCHW or channels-last tensors.
//
// Why: as library products these are batched GEMMs with one dimension of 3, which neither MKL nor
// oneDNN blocks for: 25–170 µs a call inside a small-preset training step for a few hundred
// thousand multiply-adds, ~26 calls a step at 8² (2.7 ms of a ~70 ms profiled step). A loop that
// keeps the 3 channels' values in registers streams the wide side once, vectorised across pixels
// (NCHW) or across channels (channels-last). A channels-last CPU network had run them as MKL
// products of its pixel rows: 2.6 ms a small 8² step against 0.6 ms for the NCHW loops (trace).
//
// The same function as the products: each output sums the same terms, in another order.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace progan {

// The most channels the narrow side may have (grey, RGB, RGBA).
constexpr int64_t kNarrowChannels = 4;

// Whether a product between a side of `a` and a side of `b` channels takes these loops: float32 or
// float64, and one side narrow.
bool narrowFits(int64_t a, int64_t b, at::ScalarType type);

// out [N, A, H, W] = m [A, B] applied to every pixel of in [N, B, H, W], plus bias [A] when given;
// out is channels-last where asked, else contiguous. Tensors are read as they lie when NCHW or
// channels-last in memory (anything else is copied to NCHW first): the loops vectorise along the
// wide side's contiguous dimension, its pixels (NCHW) or its channels (channels-last).
at::Tensor narrowProduct(const at::Tensor& m, const at::Tensor& in, const std::optional<at::Tensor>& bias, bool channelsLast);

// [A, B] = Σ over images and pixels of left [N, A, H, W] · right [N, B, H, W] (each NCHW or
// channels-last, as above): a 1×1 convolution's weight gradient with left the output gradient and
// right the input. Each entry is summed by one thread in a fixed order, so the result does not
// depend on threads.
at::Tensor narrowGram(const at::Tensor& left, const at::Tensor& right);

}  // namespace progan
