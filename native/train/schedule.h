// The growth schedule (official train.py TrainingSchedule): a pure function of images shown.
#pragma once
#include <cstdint>
#include <map>

namespace progan {

struct ScheduleConfig {
  int64_t startResolution = 4;
  int64_t finalResolution = 1024;
  double stableKimg = 600;   // lod_training_kimg
  double fadeKimg = 600;     // lod_transition_kimg
  std::map<int64_t, int64_t> minibatch;      // per resolution; missing → minibatchBase
  int64_t minibatchBase = 4;
  std::map<int64_t, double> learningRate;    // per resolution; missing → learningRateBase
  double learningRateBase = 0.001;
};

struct SchedulePoint {
  int64_t resolution;  // the native resolution networks run at (the newer one during a fade)
  double lod;          // log2(final / resolution) + (1 − alpha)
  double alpha;        // weight of the newest block, 1 − frac(lod)
  bool fading;
  int64_t minibatch;
  double learningRate;
};

SchedulePoint scheduleAt(const ScheduleConfig& config, double imagesShown);
// The point for a fixed resolution and α (trainPhase), with that resolution's minibatch and lr.
SchedulePoint pointFor(const ScheduleConfig& config, int64_t resolution, double alpha);

}  // namespace progan
