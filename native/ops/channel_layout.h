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

// t as it is when dense in one of the two orders (NCHW wins where both describe it), else copied
// into the order it suggests; the kernels then index memory directly.
inline std::pair<at::Tensor, ChannelLayout> denseChannels(const at::Tensor& t) {
  const int64_t n = t.size(0), c = t.size(1), p = t.dim() == 4 ? t.size(2) * t.size(3) : 1;
  if (t.dim() == 2) return {t.contiguous(), {n, c, p, true}};
  if (t.is_contiguous()) return {t, {n, c, p, false}};
  if (t.is_contiguous(at::MemoryFormat::ChannelsLast)) return {t, {n, c, p, true}};
  const bool last = t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  return {t.contiguous(last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous), {n, c, p, last}};
}

// t (shaped like the tensor `layout` describes) dense in that layout's order.
inline at::Tensor inChannelLayout(const at::Tensor& t, const ChannelLayout& layout) {
  if (t.dim() == 2 || !layout.channelsInner) return t.contiguous();
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace progan
