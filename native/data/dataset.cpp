#include "data/dataset.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace progan {

DatasetFile::DatasetFile(const DatasetConfig& config) : config_(config) {
  const int fd = ::open(config.path.c_str(), O_RDONLY);
  TORCH_CHECK(fd >= 0, "Cannot open the dataset ", config.path, ": ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  mapSize_ = size_t(st.st_size);
  TORCH_CHECK(int64_t(mapSize_) == config.fileSize, "The dataset ", config.path, " changed size since it was checked (",
              mapSize_, " bytes, expected ", config.fileSize, ")");
  map_ = ::mmap(nullptr, mapSize_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  TORCH_CHECK(map_ != MAP_FAILED, "Cannot map the dataset ", config.path, ": ", std::strerror(errno));
  const auto* base = static_cast<const uint8_t*>(map_);
  for (const auto& level : config.levels) {
    const int64_t bytes = config.count * config.channels * level.resolution * level.resolution;
    TORCH_CHECK(level.offset >= 0 && level.offset + bytes <= int64_t(mapSize_), "The dataset ", config.path,
                " is truncated: level ", level.resolution, " ends past the end of the file");
    levels_[level.resolution] = base + level.offset;
  }
  if (config.labelsOffset >= 0) {
    TORCH_CHECK(config.labelsOffset + config.count * 4 <= int64_t(mapSize_), "The dataset ", config.path,
                " is truncated: its labels end past the end of the file");
    labels_ = reinterpret_cast<const int32_t*>(base + config.labelsOffset);
  }
  ::madvise(map_, mapSize_, MADV_RANDOM);
}

DatasetFile::~DatasetFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, mapSize_);
}

at::Tensor DatasetFile::images(const at::Tensor& indices, int64_t resolution) const {
  const auto it = levels_.find(resolution);
  TORCH_CHECK(it != levels_.end(), "The dataset has no level at ", resolution, "×", resolution);
  const int64_t n = indices.size(0);
  const int64_t bytes = config_.channels * resolution * resolution;
  auto out = at::empty({n, config_.channels, resolution, resolution}, at::kByte);
  auto* dst = out.data_ptr<uint8_t>();
  const auto* idx = indices.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * bytes, it->second + idx[i] * bytes, size_t(bytes));
  return out;
}

at::Tensor DatasetFile::labels(const at::Tensor& indices) const {
  TORCH_CHECK(labels_, "The dataset has no labels");
  const int64_t n = indices.size(0);
  auto out = at::empty({n}, at::kLong);
  const auto* idx = indices.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) out.data_ptr<int64_t>()[i] = labels_[idx[i]];
  return out;
}

Sampler::Sampler(int64_t count, uint64_t seed)
    : count_(count), generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  permutation_ = at::randperm(count_, generator_, at::kLong);
}

at::Tensor Sampler::next(int64_t batch) {
  auto out = at::empty({batch}, at::kLong);
  auto* dst = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch; ++i) {
    if (position == count_) {
      permutation_ = at::randperm(count_, generator_, at::kLong);
      position = 0;
      ++epoch;
    }
    dst[i] = permutation_.data_ptr<int64_t>()[position++];
  }
  return out;
}

}  // namespace progan
