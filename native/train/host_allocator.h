// The host (CPU) tensor allocator of training processes.
#pragma once

namespace progan {

// Makes c10's CPU allocator keep freed buffers of 64 KB and more and hand them out again for
// the same size, instead of returning them to the C library.
//
// A training step frees and reallocates the same buffers (activations, gradients, and oneDNN's
// reordered copies of every weight, which ATen allocates through c10) thousands of times, and
// glibc hands large freed blocks back to the kernel: every step then faults its pages in again.
// On a 2-core VM a fault cost ~7 µs per 4 KB page, so reordering a 512×513×3×3 weight took 16 ms
// instead of 0.6, and at 4² with paper channels the reorders cost more than the convolutions.
//
// Idle cached memory is capped at a quarter of physical memory; past it, blocks of other sizes
// are released first. Process-wide, like every c10 allocator; installed once, never removed.
void useCachingHostAllocator();

struct HostCacheStats {
  bool installed = false;
  size_t idleBytes = 0;  // kept for reuse now
  size_t capBytes = 0;   // most kept idle
};
HostCacheStats hostCacheStats();

// Caps the idle memory kept; blocks of other sizes go first, then the block being freed.
void setHostCacheCap(size_t bytes);

}  // namespace progan
