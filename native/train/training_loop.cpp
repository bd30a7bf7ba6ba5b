#include "train/training_loop.h"

#include <chrono>
#include <tuple>

namespace progan {

namespace {

using Clock = std::chrono::steady_clock;

class TickAccumulator {
 public:
  TickAccumulator(Trainer& trainer, int64_t tickImages, const TickCallback& onTick)
      : trainer_(trainer), tickImages_(std::max<int64_t>(tickImages, 1)), onTick_(onTick) {
    begin();
  }

  void add(const SchedulePoint& p, const StepStats& s) {
    last_ = p;
    ++n_;
    // Summed on the device; the host sees the sum once per tick.
    if (sum_.defined()) {
      sum_.add_(s.values);
    } else {
      sum_ = s.values.clone();
    }
    if (trainer_.imagesShown >= tickStart_ + tickImages_) emit(false, false);
  }

  TickReport finish(bool stopped) { return emit(true, stopped); }

 private:
  void begin() {
    tickStart_ = trainer_.imagesShown;
    t0_ = Clock::now();
    n_ = 0;
    sum_ = at::Tensor();
  }

  TickReport emit(bool finished, bool stopped) {
    TickReport r;
    // Reading the sums waits for the device, so the tick's time below includes all its work.
    const auto sum = sum_.defined() ? StepStats::read(sum_) : StepFigures{};
    const double seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double k = n_ > 0 ? 1.0 / double(n_) : 0.0;
    r.imagesShown = trainer_.imagesShown;
    r.steps = trainer_.steps;
    r.tickSteps = n_;
    r.resolution = last_.resolution;
    r.minibatch = last_.minibatch;
    r.alpha = last_.alpha;
    r.lod = last_.lod;
    r.learningRate = last_.learningRate;
    r.fading = last_.fading;
    r.dLoss = sum.dLoss * k;
    r.gLoss = sum.gLoss * k;
    r.gradientPenalty = sum.gradientPenalty * k;
    r.drift = sum.drift * k;
    r.wasserstein = sum.wasserstein * k;
    r.labelLoss = sum.labelLoss * k;
    r.seconds = seconds;
    r.imagesPerSecond = seconds > 0 ? double(trainer_.imagesShown - tickStart_) / seconds : 0.0;
    std::tie(r.skippedD, r.skippedG) = trainer_.skipped();
    r.finished = finished;
    r.stopped = stopped;
    if (n_ > 0 || finished) onTick_(r);
    begin();
    return r;
  }

  Trainer& trainer_;
  int64_t tickImages_;
  const TickCallback& onTick_;
  int64_t tickStart_ = 0, n_ = 0;
  Clock::time_point t0_;
  at::Tensor sum_;  // of StepStats::values
  SchedulePoint last_{};
};

}  // namespace

TickReport runSchedule(Trainer& trainer, int64_t untilImages, int64_t tickImages, const TickCallback& onTick) {
  trainer.phase = {};  // the schedule, not an earlier trainPhase(), now says where training stands
  TickAccumulator ticks(trainer, tickImages, onTick);
  while (trainer.imagesShown < untilImages) {
    if (trainer.stopRequested.load()) return ticks.finish(true);
    const auto point = scheduleAt(trainer.config().schedule, double(trainer.imagesShown));
    ticks.add(point, trainer.trainStep(point));
  }
  return ticks.finish(false);
}

TickReport runPhase(Trainer& trainer, int64_t resolution, bool fade, int64_t images, int64_t tickImages,
                    const TickCallback& onTick) {
  auto& ph = trainer.phase;
  if (!(ph.resolution == resolution && ph.fade == fade && ph.images == images && ph.done < images)) {
    ph = {resolution, fade, images, 0};
  }
  TickAccumulator ticks(trainer, tickImages, onTick);
  while (ph.done < images) {
    if (trainer.stopRequested.load()) return ticks.finish(true);
    const double alpha = fade ? double(ph.done) / double(images) : 1.0;
    const auto point = pointFor(trainer.config().schedule, resolution, alpha);
    const int64_t before = trainer.imagesShown;
    const auto stats = trainer.trainStep(point);
    ph.done += trainer.imagesShown - before;
    ticks.add(point, stats);
  }
  return ticks.finish(false);
}

}  // namespace progan
