#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace progan {

namespace {
double log2i(int64_t v) { return std::log2(double(v)); }
}  // namespace

SchedulePoint pointFor(const ScheduleConfig& c, int64_t resolution, double alpha) {
  SchedulePoint p;
  p.resolution = resolution;
  p.alpha = alpha;
  p.fading = alpha < 1.0;
  p.lod = log2i(c.finalResolution) - log2i(resolution) + (1.0 - alpha);
  const auto mb = c.minibatch.find(resolution);
  p.minibatch = mb == c.minibatch.end() ? c.minibatchBase : mb->second;
  const auto lr = c.learningRate.find(resolution);
  p.learningRate = lr == c.learningRate.end() ? c.learningRateBase : lr->second;
  return p;
}

SchedulePoint scheduleAt(const ScheduleConfig& c, double imagesShown) {
  const double kimg = imagesShown / 1000.0;
  const double phaseDur = c.stableKimg + c.fadeKimg;
  const double phaseIdx = phaseDur > 0 ? std::floor(kimg / phaseDur) : 0.0;
  const double phaseKimg = kimg - phaseIdx * phaseDur;
  double lod = log2i(c.finalResolution) - std::floor(log2i(c.startResolution)) - phaseIdx;
  if (c.fadeKimg > 0) lod -= std::max(phaseKimg - c.stableKimg, 0.0) / c.fadeKimg;
  lod = std::max(lod, 0.0);
  const int64_t resolution = int64_t(1) << int64_t(log2i(c.finalResolution) - std::floor(lod));
  auto p = pointFor(c, resolution, 1.0 - (lod - std::floor(lod)));
  p.lod = lod;
  return p;
}

}  // namespace progan
