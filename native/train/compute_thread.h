// The one thread that runs this process's multi-threaded libtorch work: training loops, trainer
// and network construction, sampling and network passes.
//
// OpenMP gives every thread that opens a parallel region a team of its own. Training loops on
// libuv's pool threads and calls on the JS thread made several teams, more threads than a 2-core
// machine has cores, and libgomp then makes a team's idle workers sleep at once instead of spinning
// briefly: every parallel region, hundreds per step, paid a futex wake-up. With one team its worker
// spins for GOMP_SPINCOUNT iterations (lib/native.ts sets 10,000 unless the user chose a policy)
// before it sleeps. On a 2-core machine that took a small-preset step at 4² from 19–22 to 14–16 ms
// and at 8² from 65–81 to 52–58 ms, paper 4² from 103–106 to 94–95 ms.
//
// The calling threads themselves keep one intra-op thread (keepCallerSingleThreaded), so work they
// still do (conversions, checkpoint copies, a call made while the compute thread is busy) opens no
// team of its own.
#pragma once
#include <functional>

namespace progan {

// Runs `job` on the compute thread with `threads` intra-op threads (0: the process default below)
// and returns when it is done, rethrowing what it threw. While the compute thread runs another job
// (a second trainer's loop), `job` runs on the calling thread instead, single-threaded there: a call
// never waits for another trainer's run to end.
void runOnComputeThread(const std::function<void()>& job, int threads = 0);

// The intra-op thread count of jobs that ask for none (0: libtorch's default, one per core).
void setComputeThreads(int threads);

// One intra-op thread (OpenMP and MKL) for the calling thread from now on.
void keepCallerSingleThreaded();

}  // namespace progan
