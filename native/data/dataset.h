// The multi-level uint8 dataset file (.pgds, lib/dataset/format.ts), memory-mapped: a batch is a
// gather of raw bytes, no decoding in the training loop.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <map>

#include "train/training_config.h"

namespace progan {

class DatasetFile {
 public:
  explicit DatasetFile(const DatasetConfig& config);
  ~DatasetFile();
  DatasetFile(const DatasetFile&) = delete;
  DatasetFile& operator=(const DatasetFile&) = delete;

  int64_t count() const { return config_.count; }
  bool hasLabels() const { return labels_ != nullptr; }
  // uint8 [B, C, r, r] for the given image indices at resolution r.
  at::Tensor images(const at::Tensor& indices, int64_t resolution) const;
  // int64 [B] class indices.
  at::Tensor labels(const at::Tensor& indices) const;

 private:
  DatasetConfig config_;
  void* map_ = nullptr;
  size_t mapSize_ = 0;
  std::map<int64_t, const uint8_t*> levels_;
  const int32_t* labels_ = nullptr;
};

// Draws image indices epoch by epoch: a fresh permutation per epoch from its own generator, so
// the order depends only on the seed and can be saved and restored exactly.
class Sampler {
 public:
  Sampler(int64_t count, uint64_t seed);
  at::Tensor next(int64_t batch);

  at::Generator& generator() { return generator_; }
  at::Tensor& permutation() { return permutation_; }
  int64_t position = 0;
  int64_t epoch = 0;

 private:
  int64_t count_;
  at::Generator generator_;
  at::Tensor permutation_;
};

}  // namespace progan
