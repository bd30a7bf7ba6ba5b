// The matrix product of the dense layers, computed in the operand order MKL runs fastest.
//
// The dense layers' products are skinny: a batch of 16–32 rows against a weight of up to 8192×512.
// For an output with fewer rows than columns, MKL computes A·B 1.1–2.4× faster as (Bᵀ·Aᵀ)ᵀ on this
// kind of CPU (paper G dense forward 3.1 → 1.3 ms, D dense input gradient 3.0 → 2.3 ms; measured in
// scripts/bench's run of one process, 2 threads). The swapped order writes the transposed output,
// so it is taken only where the output is an activation, small beside the weight; a weight gradient
// is computed in the layout of its weight, with no transposing copy of the weight's size.
// Its derivatives are again this product (∂A = G·Bᵀ, ∂B = Aᵀ·G), to any order.
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// a [m, k] · b [k, n] → [m, n], contiguous.
at::Tensor matrixProduct(const at::Tensor& a, const at::Tensor& b);

}  // namespace progan
