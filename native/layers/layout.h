// Memory layouts as stride vectors, for autograd functions that write their results (and their
// gradients) in a chosen layout rather than ATen's default.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>
#include <c10/util/strides.h>

#include <cstdint>
#include <vector>

namespace progan {

inline std::vector<int64_t> contiguousStrides(at::IntArrayRef sizes) {
  const auto s = c10::contiguous_strides(sizes);
  return {s.begin(), s.end()};
}

// [N, C, H, W] strides, channels-last (NHWC) or contiguous.
inline std::vector<int64_t> layoutStrides(at::IntArrayRef sizes, bool channelsLast) {
  return channelsLast ? c10::get_channels_last_strides_2d(sizes) : contiguousStrides(sizes);
}

// The layout a gradient for t is written in: t's own, so that a parameter's gradient accumulates
// without a copy; contiguous where t overlaps itself or has gaps (an expanded or sliced view).
inline std::vector<int64_t> gradientStrides(const at::Tensor& t) {
  return t.is_non_overlapping_and_dense() ? t.strides().vec() : contiguousStrides(t.sizes());
}

}  // namespace progan
