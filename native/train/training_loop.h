// Runs steps until a target (the schedule up to some images shown, or one trainPhase), grouping
// them into ticks for progress reports. Checks the stop flag before every step.
#pragma once
#include <functional>

#include "train/trainer.h"

namespace progan {

struct TickReport {
  int64_t imagesShown = 0, steps = 0, tickSteps = 0, resolution = 0, minibatch = 0;
  double alpha = 1, lod = 0, learningRate = 0;
  bool fading = false;
  double dLoss = 0, gLoss = 0, gradientPenalty = 0, drift = 0, wasserstein = 0, labelLoss = 0;
  double imagesPerSecond = 0, seconds = 0;
  int64_t skippedD = 0, skippedG = 0;
  bool finished = false, stopped = false;
};

using TickCallback = std::function<void(const TickReport&)>;

// Follows the schedule from trainer.imagesShown until it reaches untilImages.
TickReport runSchedule(Trainer& trainer, int64_t untilImages, int64_t tickImages, const TickCallback& onTick);

// One phase at `resolution`: stable (α = 1) or fading in (α from 0 to 1 over `images`), with the
// schedule's minibatch and learning rate for that resolution. Continues trainer.phase when it
// describes the same phase (a resumed run).
TickReport runPhase(Trainer& trainer, int64_t resolution, bool fade, int64_t images, int64_t tickImages,
                    const TickCallback& onTick);

}  // namespace progan
