// WGAN-GP with drift for D and −D(fake) for G (official loss.py D_wgangp_acgan / G_wgan_acgan),
// with the auxiliary-classifier terms when the networks are conditional.
#pragma once
#include <ATen/core/Tensor.h>

#include "networks/discriminator.h"
#include "train/training_config.h"

namespace progan {

struct DiscriminatorTerms {
  at::Tensor loss;              // scalar, what D minimises (batch mean)
  at::Tensor wasserstein;       // mean(D(fake) − D(real))
  at::Tensor gradientPenalty;   // mean of the weighted penalty
  at::Tensor drift;             // mean of ε·D(real)²
  at::Tensor labelLoss;         // mean cross-entropy on reals and fakes (0 when unconditional)
};

// realLabels: int64 [N] class indices (undefined when unconditional); fakes were made with them.
DiscriminatorTerms discriminatorLoss(Discriminator& d, const at::Tensor& reals, const at::Tensor& fakes,
                                     const at::Tensor& realLabels, const at::Tensor& u, int64_t resolution,
                                     const Alpha& alpha, const LossConfig& config, double gpNormDivisor);

struct GeneratorTerms {
  at::Tensor loss;
  at::Tensor labelLoss;
};

GeneratorTerms generatorLoss(Discriminator& d, const at::Tensor& fakes, const at::Tensor& fakeLabels,
                             int64_t resolution, const Alpha& alpha, const LossConfig& config);

}  // namespace progan
