#include "train/loss.h"

#include <ATen/ATen.h>

#include "ops/gradient_penalty.h"

namespace progan {

namespace {
at::Tensor labelCrossEntropy(const at::Tensor& out, const at::Tensor& labels) {
  return at::cross_entropy_loss(out.slice(1, 1), labels, {}, at::Reduction::None);
}
}  // namespace

DiscriminatorTerms discriminatorLoss(Discriminator& d, const at::Tensor& reals, const at::Tensor& fakes,
                                     const at::Tensor& realLabels, const at::Tensor& u, int64_t resolution,
                                     const Alpha& alpha, const LossConfig& config, double gpNormDivisor) {
  // Reals and fakes in one D pass: half the op launches, larger GEMMs, the same per-sample result.
  const int64_t n = reals.size(0);
  const auto out = d->forward(at::cat({reals, fakes}), resolution, alpha, /*parts=*/2);
  const auto realOut = out.slice(0, 0, n), fakeOut = out.slice(0, n);
  const auto realScores = realOut.select(1, 0), fakeScores = fakeOut.select(1, 0);
  const auto gp = gradientPenalty([&](const at::Tensor& x) { return d->forward(x, resolution, alpha).select(1, 0); },
                                  reals, fakes, u, config.lambda, config.gamma, gpNormDivisor, d->config().opsImpl());
  DiscriminatorTerms t;
  t.wasserstein = (fakeScores - realScores).mean();
  t.gradientPenalty = gp.mean();
  t.drift = realScores.square().mean() * config.drift;
  auto perSample = fakeScores - realScores + gp + realScores.square() * config.drift;
  if (realLabels.defined()) {
    const auto ce = labelCrossEntropy(realOut, realLabels) + labelCrossEntropy(fakeOut, realLabels);
    perSample = perSample + ce * config.conditionWeight;
    t.labelLoss = ce.mean();
  } else {
    t.labelLoss = at::zeros({}, reals.options());
  }
  t.loss = perSample.mean();
  return t;
}

GeneratorTerms generatorLoss(Discriminator& d, const at::Tensor& fakes, const at::Tensor& fakeLabels,
                             int64_t resolution, const Alpha& alpha, const LossConfig& config) {
  const auto out = d->forward(fakes, resolution, alpha);
  auto perSample = -out.select(1, 0);
  GeneratorTerms t;
  if (fakeLabels.defined()) {
    const auto ce = labelCrossEntropy(out, fakeLabels);
    perSample = perSample + ce * config.conditionWeight;
    t.labelLoss = ce.mean();
  } else {
    t.labelLoss = at::zeros({}, fakes.options());
  }
  t.loss = perSample.mean();
  return t;
}

}  // namespace progan
