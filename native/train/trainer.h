// One ProGAN training run: G, D, the EMA generator G_ema, an Adam per network, the run's RNG and
// the dataset sampler. A step (trainStep) is one D update then one G update (official
// D_repeats 1), at the native resolution of the schedule point.
#pragma once
#include <ATen/core/Generator.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "data/dataset.h"
#include "networks/discriminator.h"
#include "networks/generator.h"
#include "networks/named_parameters.h"
#include "train/adam.h"
#include "train/loss.h"
#include "train/step_graph.h"
#include "train/training_config.h"

namespace progan {

struct StepInputs {
  at::Tensor reals;       // float [N, C, r, r] in [−1, 1] at the point's resolution, before the real fade
  at::Tensor realLabels;  // int64 [N] or undefined
  at::Tensor latentsD;    // [N, latent] for the fakes of the D step
  at::Tensor u;           // [N, 1, 1, 1] gradient-penalty mixing weights
  at::Tensor latentsG;    // [N, latent] for the G step
  at::Tensor fakeLabels;  // int64 [N] labels for the G step, or undefined
};

// One step's figures on the host.
struct StepFigures {
  double dLoss = 0, gLoss = 0, gradientPenalty = 0, drift = 0, wasserstein = 0, labelLoss = 0;
  double dSkipped = 0, gSkipped = 0;  // 1 when that update was skipped for non-finite gradients
};

// One step's figures packed in one float64 tensor on the training device, so that a step never
// waits for the device: they reach the host when reported (a training loop sums them over a tick
// and copies once).
struct StepStats {
  enum Index { kDLoss, kGLoss, kGradientPenalty, kDrift, kWasserstein, kLabelLoss, kDSkipped, kGSkipped, kCount };
  at::Tensor values;  // [kCount]
  // Copies `values` (or a sum of them) to the host.
  static StepFigures read(const at::Tensor& values);
};

struct StepGradients {
  NamedTensors discriminator, generator;
};

// How the CUDA graph path (train/step_graph.h) has served the steps so far.
struct GraphStats {
  int64_t captures = 0;  // graphs recorded
  int64_t replays = 0;   // steps run as a replay
  std::string failure;   // why graphs were turned off for this trainer, if a capture failed
};

// Where a trainPhase() run stands, so a resumed run can continue the phase it was in.
struct PhaseProgress {
  int64_t resolution = 0;
  bool fade = false;
  int64_t images = 0;
  int64_t done = 0;
};

class Trainer {
 public:
  explicit Trainer(const TrainingConfig& config);

  // Draws reals, labels, latents and u from the dataset and the run's RNG, then steps.
  StepStats trainStep(const SchedulePoint& point);
  // One step on explicit inputs; `capture` receives both networks' gradients before the updates.
  StepStats step(const SchedulePoint& point, const StepInputs& inputs, StepGradients* capture = nullptr);

  at::Tensor sample(const at::Tensor& latents, const at::Tensor& labels, int64_t resolution, double alpha, bool ema);

  // Full state for checkpoints: tensors by name and scalars.
  std::pair<NamedTensors, std::map<std::string, double>> exportState() const;
  void importState(const NamedTensors& tensors, const std::map<std::string, double>& scalars);

  const TrainingConfig& config() const { return config_; }
  at::Device device() const { return device_; }
  Generator& generator() { return g_; }
  Generator& generatorEma() { return gEma_; }
  Discriminator& discriminator() { return d_; }

  // Updates skipped for non-finite gradients so far, D and G, read from the device in one copy (a
  // sync on a GPU: for reports and checkpoints).
  std::pair<int64_t, int64_t> skipped() const;

  int64_t imagesShown = 0;
  int64_t steps = 0;
  double lastLod = -1.0;  // official prev_lod: Adam resets when floor or ceil of lod changes
  PhaseProgress phase;
  GraphStats graphStats;
  std::atomic<bool> stopRequested{false};
  std::mutex busy;  // held while a training loop runs; sync calls refuse instead of waiting

 private:
  double emaBeta(int64_t minibatch) const;
  at::Tensor oneHot(const at::Tensor& labels) const;
  // CPU tensors (the dataset's batch, the run's random draws) to the training device; on a GPU from
  // pinned memory without waiting, so the host prepares step n+1 while the device runs step n.
  at::Tensor toDevice(const at::Tensor& t) const;
  // The device work of a step: both updates and the EMA; the host bookkeeping stays in step().
  // `alpha` is point.alpha, read from alphaOnDevice_ in a recorded step.
  StepStats deviceStep(const SchedulePoint& point, const StepInputs& in, StepGradients* capture, const Alpha& alpha);

  // A step's work is recorded as a CUDA graph per key: what a replay repeats unchanged. The EMA's
  // β and a fade's α are read from the device, so neither β's ramp-up nor a fade needs a new graph;
  // whether α < 1 decides which blends run at all.
  struct GraphKey {
    int64_t resolution, minibatch;
    double learningRate;
    bool labels;
    bool fading;
    bool operator==(const GraphKey&) const = default;
  };
  std::optional<GraphKey> graphKeyFor(const SchedulePoint& point, const StepInputs& in, bool capturing) const;
  // The α an eager step blends by (see trainer.cpp).
  Alpha eagerAlpha(const SchedulePoint& point) const;
  StepStats graphStep(const GraphKey& key, const SchedulePoint& point, const StepInputs& in);
  std::unique_ptr<StepGraph> graph_;
  std::optional<GraphKey> graphKey_;  // of graph_, or of the warm-up steps before its capture
  int graphWarmSteps_ = 0;

  TrainingConfig config_;
  Generator g_{nullptr}, gEma_{nullptr};
  Discriminator d_{nullptr};
  std::unique_ptr<Adam> adamG_, adamD_;
  std::vector<at::Tensor> gParams_, dParams_, gEmaParams_;
  // The EMA update skips a parameter known to equal its average: lerp(a, a, w) is exactly a, and
  // most of a paper-size G (the resolutions not reached yet) stays untouched for most of a run.
  // "Known" means both were equal when their version counters were recorded here, and neither has
  // been written since: no gradient this step (Adam updates only those) and the same versions (a
  // parameter load bumps them).
  struct EmaEquality {
    int64_t gVersion, emaVersion;
  };
  std::vector<std::optional<EmaEquality>> emaEqual_;
  void recordEmaEquality();
  at::Generator rng_;
  at::Device device_{at::kCPU};
  at::Tensor skipCounts_;  // float64 [2] on the device: D, G
  at::Tensor emaWeight_;      // 1 − β of the current step, on the device (read there on a GPU)
  at::Tensor alphaOnDevice_;  // α of the current step, on the device (read there by a recorded step)
  std::unique_ptr<DatasetFile> dataset_;
  std::unique_ptr<Sampler> sampler_;
};

}  // namespace progan
