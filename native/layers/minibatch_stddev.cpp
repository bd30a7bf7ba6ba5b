#include "layers/minibatch_stddev.h"

#include <ATen/ATen.h>

namespace progan {

at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize, int64_t parts) {
  TORCH_CHECK(x.dim() == 4, "minibatchStddev expects [N, C, H, W] but received ", x.sizes());
  TORCH_CHECK(parts >= 1 && x.size(0) % parts == 0, "minibatchStddev: ", x.size(0), " samples do not split into ",
              parts, " equal parts");
  const int64_t n = x.size(0) / parts, h = x.size(2), w = x.size(3);
  const int64_t g = std::min(groupSize, n);
  TORCH_CHECK(g > 0 && n % g == 0, "Expected a batch size divisible by the minibatch-stddev group size ", g,
              " but received ", n, ". Use a batch size that is a multiple of ", g,
              " or set minibatchStddevGroup to a divisor of it.");
  // Statistics in fp32 under reduced precision (official), in fp64 when the input is fp64.
  const auto statsType = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto y = x.to(statsType).reshape({parts, g, n / g, x.size(1), h, w});
  y = y - y.mean(1, true);
  y = (y.square().mean(1) + 1e-8).sqrt();                 // [P, M, C, H, W]
  y = y.mean({2, 3, 4}, true).to(x.scalar_type());        // [P, M, 1, 1, 1]
  y = y.unsqueeze(1).expand({parts, g, n / g, 1, h, w}).reshape({parts * n, 1, h, w});
  return at::cat({x, y}, 1);
}

}  // namespace progan
