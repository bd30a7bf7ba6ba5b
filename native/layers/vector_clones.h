// Our CPU loops are compiled for baseline x86-64 (SSE2, 4 floats a vector) so that one addon runs on
// any x86-64 CPU. A function marked PROGAN_VECTOR_CLONES is compiled three times, for AVX-512, AVX2
// and the baseline, and the loader picks the clone by what the CPU reports. Mark the function that
// holds the hot loop itself: a lambda defined inside it (a parallel_for body) is a function of its
// own and does not inherit the target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PROGAN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PROGAN_VECTOR_CLONES
#endif
