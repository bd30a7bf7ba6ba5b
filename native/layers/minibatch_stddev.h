// Minibatch standard deviation (paper §3): one extra feature map holding the average stddev of
// each feature over a group of samples, so D can see a lack of variation.
//
// The statistic sits in D, so the gradient penalty differentiates it twice. With OpsImpl::Auto it
// is one autograd function with closed-form first and second derivatives (a handful of ops on the
// 4×4 map instead of the dozens autograd records for the composite), computed by loops of our own
// on the CPU and by ATen ops elsewhere; OpsImpl::Reference is the composite of ATen ops.
// test/ops.test.ts compares each closed form with the composite to second order.
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/ops_impl.h"

namespace progan {

// groupSize is capped at the batch size (official: tf.minimum). A batch larger than the group
// must divide by it; sample i belongs to group (i mod N/G), as the official reshape does.
// `parts` > 1 treats x as that many batches stacked along N (the D step's reals and fakes in one
// pass) and computes each part's statistic on its own, exactly as separate calls would.
// `kernels`: AtenOps computes the closed forms with ATen ops on the CPU too (for the parity tests).
enum class StddevKernels { ForDevice, AtenOps };
at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize, int64_t parts = 1, OpsImpl impl = OpsImpl::Auto,
                           StddevKernels kernels = StddevKernels::ForDevice);

}  // namespace progan
