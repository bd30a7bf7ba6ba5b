// The matrix product of the dense layers, computed by the library and in the operand order that run
// it fastest.
//
// The dense layers' products are skinny: a batch of 16–32 rows against a weight of up to 8192×512.
// Float32 products of 2²⁰ multiply-adds or more (every dense layer's but the last, at batch 16)
// go to oneDNN, whose AVX-512 kernels beat MKL's on this kind of CPU (AMD, where MKL takes its AVX2
// path): paper 4² steps took 11 % less CPU time. Below that, MKL computes A·B 1.1–2.4×
// faster as (Bᵀ·Aᵀ)ᵀ for an output with fewer rows than columns (measured in scripts/bench's run of
// one process, 2 threads). The swapped order writes the transposed output, so it is taken only where
// the output is an activation, small beside the weight; a weight gradient is computed in the layout
// of its weight, with no transposing copy of the weight's size.
// Its derivatives are again this product (∂A = G·Bᵀ, ∂B = Aᵀ·G), to any order.
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// a [m, k] · b [k, n] → [m, n], contiguous.
at::Tensor matrixProduct(const at::Tensor& a, const at::Tensor& b);

}  // namespace progan
