#include "train/host_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace progan {

namespace {

constexpr size_t kAlignment = 64;          // c10's CPU alignment; also the header holding the size
constexpr size_t kMinCached = 64 * 1024;   // smaller blocks come from malloc's bins without faults

struct IdleBlocks {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> bySize;  // block starts, by requested size
  size_t bytes = 0;
  size_t cap = 0;
};

// Never destroyed: tensors may outlive every static.
IdleBlocks& idle() {
  static auto* blocks = [] {
    auto* b = new IdleBlocks();
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
    b->cap = pages > 0 && pageSize > 0 ? size_t(pages) * size_t(pageSize) / 4 : size_t(1) << 30;
    return b;
  }();
  return *blocks;
}

void* userPointer(void* block) { return static_cast<char*>(block) + kAlignment; }
void* blockOf(void* user) { return static_cast<char*>(user) - kAlignment; }
size_t& sizeOf(void* block) { return *static_cast<size_t*>(block); }

void* acquire(size_t n) {
  if (n >= kMinCached) {
    auto& c = idle();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.bySize.find(n);
    if (it != c.bySize.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      c.bytes -= n;
      return userPointer(block);
    }
  }
  void* block = nullptr;
  TORCH_CHECK(posix_memalign(&block, kAlignment, n + kAlignment) == 0 && block,
              "Out of host memory: could not allocate ", n, " bytes for a tensor");
  sizeOf(block) = n;
  return userPointer(block);
}

// Takes idle blocks out until `extra` more bytes fit under the cap, sparing those of size `spare`
// (0: none); the caller holds the lock and frees what comes back after releasing it.
std::vector<void*> evictFor(IdleBlocks& c, size_t extra, size_t spare) {
  std::vector<void*> evicted;
  for (auto it = c.bySize.begin(); c.bytes + extra > c.cap && it != c.bySize.end(); ++it) {
    while (c.bytes + extra > c.cap && !it->second.empty() && it->first != spare) {
      evicted.push_back(it->second.back());
      it->second.pop_back();
      c.bytes -= it->first;
    }
  }
  return evicted;
}

void release(void* user) {
  if (!user) return;
  void* block = blockOf(user);
  const size_t n = sizeOf(block);
  if (n >= kMinCached) {
    auto& c = idle();
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      // Over the cap, sizes no longer in use (an earlier resolution's) go first.
      evicted = evictFor(c, n, n);
      if (c.bytes + n <= c.cap) {
        c.bySize[n].push_back(block);
        c.bytes += n;
        block = nullptr;
      }
    }
    for (void* b : evicted) std::free(b);
  }
  std::free(block);
}

class CachingHostAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    void* p = n > 0 ? acquire(n) : nullptr;
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, size_t count) const override { default_copy_data(dest, src, count); }
};

std::atomic<bool> installed{false};

}  // namespace

void useCachingHostAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed, like the blocks it hands out.
    static auto* allocator = new CachingHostAllocator();
    // Priority above the default allocator's (0), so a later default registration cannot undo it.
    c10::SetCPUAllocator(allocator, /*priority=*/1);
    installed = true;
  });
}

HostCacheStats hostCacheStats() {
  auto& c = idle();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {installed.load(), c.bytes, c.cap};
}

void setHostCacheCap(size_t bytes) {
  auto& c = idle();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.cap = bytes;
    evicted = evictFor(c, 0, /*spare=*/0);
  }
  for (void* b : evicted) std::free(b);
}

}  // namespace progan
