// Minibatch standard deviation (paper §3): one extra feature map holding the average stddev of
// each feature over a group of samples, so D can see a lack of variation.
#pragma once
#include <ATen/core/Tensor.h>

namespace progan {

// groupSize is capped at the batch size (official: tf.minimum). A batch larger than the group
// must divide by it; sample i belongs to group (i mod N/G), as the official reshape does.
// `parts` > 1 treats x as that many batches stacked along N (the D step's reals and fakes in one
// pass) and computes each part's statistic on its own, exactly as separate calls would.
at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize, int64_t parts = 1);

}  // namespace progan
