#include "layers/gemm_weight_grad.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

namespace progan {

namespace {

// cuBLAS products in float32 use TF32 where cuDNN's convolutions do, for the scope of one weight
// gradient. ATen's products read the process-wide flag, which defaults to off while cuDNN's
// defaults to on; restored on the way out, exceptions included. (A product that another trainer's
// thread runs inside that scope would see it too: rounding only, and only with two GPU trainers
// stepping at once.)
class Tf32LikeConvolutions {
 public:
  explicit Tf32LikeConvolutions(bool applies)
      : applies_(applies), before_(applies && at::globalContext().allowTF32CuBLAS()) {
    if (applies_) at::globalContext().setAllowTF32CuBLAS(at::globalContext().allowTF32CuDNN());
  }
  ~Tf32LikeConvolutions() {
    if (applies_) at::globalContext().setAllowTF32CuBLAS(before_);
  }
  Tf32LikeConvolutions(const Tf32LikeConvolutions&) = delete;
  Tf32LikeConvolutions& operator=(const Tf32LikeConvolutions&) = delete;

 private:
  bool applies_, before_;
};

}  // namespace

bool gemmWeightGradFits(const at::Tensor& x, const at::Tensor& w) {
  return x.dim() == 4 && w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3 && x.size(1) == w.size(1) &&
         at::isFloatingType(x.scalar_type()) && x.scalar_type() == w.scalar_type();
}

at::Tensor gemmWeightGrad(const at::Tensor& x, const at::Tensor& gradOut) {
  TORCH_CHECK(x.dim() == 4 && gradOut.dim() == 4 && x.size(0) == gradOut.size(0) && x.size(2) == gradOut.size(2) &&
                  x.size(3) == gradOut.size(3),
              "gemmWeightGrad expects an input [N, I, H, W] and an output gradient [N, O, H, W] but received ", x.sizes(),
              " and ", gradOut.sizes());
  const int64_t n = x.size(0), in = x.size(1), h = x.size(2), w = x.size(3), out = gradOut.size(1);
  const int64_t paddedWidth = w + 2, rows = n * (h + 2) * paddedWidth;
  // NHWC views of both, zero-padded: x by one pixel on every side, gO by two after its last row and
  // column, which puts gO[n, :, h, w] on row p of the grid and the tap (ky, kx) it meets on row
  // p + ky·(W+2) + kx of xpad.
  const auto xpad = at::constant_pad_nd(x.permute({0, 2, 3, 1}), {0, 0, 1, 1, 1, 1}).view({rows, in});
  const auto spread = at::constant_pad_nd(gradOut.permute({0, 2, 3, 1}), {0, 0, 0, 2, 0, 2}).view({rows, out});
  // Rows past the last image's last pixel hold zeros of gO only: each product stops there, where the
  // furthest tap's rows still lie inside xpad.
  const int64_t used = rows - 2 * paddedWidth - 2;
  const auto gradRows = spread.narrow(0, 0, used).t();  // [O, P]
  // [O, 3, 3, I]: each tap's [O, I] block is a strided slice a product writes in place.
  auto grad = at::empty({out, 3, 3, in}, x.options());
  const Tf32LikeConvolutions tf32(x.is_cuda() && x.scalar_type() == at::kFloat);
  for (int64_t ky = 0; ky < 3; ++ky)
    for (int64_t kx = 0; kx < 3; ++kx) {
      auto tap = grad.select(1, ky).select(1, kx);
      at::mm_out(tap, gradRows, xpad.narrow(0, ky * paddedWidth + kx, used));
    }
  return grad.permute({0, 3, 1, 2});
}

}  // namespace progan
