// A [N, C] or [N, C, H, W] tensor seen by a per-channel or per-pixel kernel: N samples of C
// channels at P pixels, stored densely in one of two orders. `channelsInner`: each pixel's C values
// are adjacent (channels-last, and every 2-D tensor); otherwise each channel's P pixels are (NCHW).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>

#include <cstdint>
#include <utility>

namespace progan {

struct ChannelLayout {
  int64_t samples, channels, pixels;
  bool channelsInner;
};

// Whether t's kernels see its channels inner: every 2-D tensor, a 4-D one dense in channels-last
// order and not in NCHW (NCHW wins where both describe it), else the order it suggests. Reads only
// its strides.
inline bool channelsInner(const at::Tensor& t) {
  if (t.dim() == 2) return true;
  if (t.is_contiguous()) return false;
  if (t.is_contiguous(at::MemoryFormat::ChannelsLast)) return true;
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

// t dense in the order channelsInner names (as it is where it already is, else a copy), and its
// layout; the kernels then index memory directly.
// t (shaped like the tensor `layout` describes) dense in that layout's order.
inline at::Tensor inChannelLayout(const at::Tensor& t, const ChannelLayout& layout) {
  if (t.dim() == 2 || !layout.channelsInner) return t.contiguous();
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

inline std::pair<at::Tensor, ChannelLayout> denseChannels(const at::Tensor& t) {
  const ChannelLayout layout{t.size(0), t.size(1), t.dim() == 4 ? t.size(2) * t.size(3) : 1, channelsInner(t)};
  return {inChannelLayout(t, layout), layout};
}

}  // namespace progan
