// Everything a training run is configured with, resolved and validated in TypeScript
// (lib/train/options.ts) and trusted here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "networks/network_config.h"
#include "train/adam.h"
#include "train/schedule.h"

namespace progan {

struct LossConfig {
  double lambda = 10.0;         // wgan_lambda
  double gamma = 1.0;           // wgan_target (CIFAR-10: 750)
  double drift = 0.001;         // wgan_epsilon
  bool officialGpScale = true;  // divide the native-resolution gradient norm by final/native (PAPER.md)
  double conditionWeight = 1.0; // official cond_weight for the auxiliary label loss
};

struct EmaConfig {
  double beta = 0.999;        // per step, used when halfLifeKimg is 0
  double halfLifeKimg = 0.0;  // > 0: β = 0.5^(minibatch / (halfLifeKimg·1000))
  double rampup = 0.0;        // > 0: half-life ≤ imagesShown·rampup (StyleGAN2-ADA ema_rampup)
};

struct DatasetLevel {
  int64_t resolution;
  int64_t offset;
};

struct DatasetConfig {
  std::string path;
  int64_t count = 0;
  int64_t channels = 3;
  int64_t resolution = 0;
  std::vector<DatasetLevel> levels;
  int64_t labelsOffset = -1;  // int32 class per image, or -1
  int64_t fileSize = 0;
};

struct TrainingConfig {
  NetworkConfig network;
  ScheduleConfig schedule;
  LossConfig loss;
  AdamConfig adam;
  EmaConfig ema;
  bool mirror = false;
  uint64_t seed = 0;
  int64_t threads = 0;  // intra-op threads of its work on the compute thread; 0: the process default
  std::string device = "cpu";  // "cpu" or "cuda" (resolved in TypeScript: 'auto' picks cuda when visible)
  bool cudaGraphs = true;       // on a GPU, steps replay a recorded CUDA graph (stable and fading)
  bool deterministic = false;   // on a GPU, only deterministic cuDNN algorithms (process-wide)
  DatasetConfig dataset;
};

}  // namespace progan
