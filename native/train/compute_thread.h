// The one thread that runs this process's multi-threaded libtorch work: training loops, trainer
// and network construction, sampling and network passes.
//
// OpenMP gives every thread that opens a parallel region a team of its own. Training loops on
// libuv's pool threads and calls on the JS thread made several teams, more threads than a 2-core
// machine has cores, and libgomp then makes a team's idle workers sleep at once instead of spinning
// briefly: every parallel region, hundreds per step, paid a futex wake-up. With one team its worker
// spins for GOMP_SPINCOUNT iterations (lib/native.ts sets 10,000 unless the user chose a policy)
// before it sleeps. On a 2-core machine, per step, spinning vs PASSIVE with one team: small preset
// 4² 15.4–16.3 vs 20.6–21.2 ms, 8² 54.7–55.1 vs 68.1–71.6 ms, 32² 328–333 vs 352–359 ms; paper 4²
// 101–106 vs 108–110 ms. With several teams libgomp's default spin gained nothing (small 4² 20–22,
// 8² 64–66 ms).
//
// The calling threads themselves keep one intra-op thread (keepCallerSingleThreaded), so work they
// still do (conversions, checkpoint copies) opens no team of its own.
#pragma once
#include <functional>

namespace progan {

// Runs `job` on the compute thread with `threads` intra-op threads (0: the process default below)
// and returns when it is done, rethrowing what it threw. While the compute thread runs another job
// (a second trainer's loop), `job` runs on the calling thread instead, with the same thread count (a
// team of its own: results must not depend on where a job ran): a call never waits for another
// trainer's run to end.
void runOnComputeThread(const std::function<void()>& job, int threads = 0);

// The intra-op thread count of jobs that ask for none (0: libtorch's default, one per core).
void setComputeThreads(int threads);

// One intra-op thread (OpenMP and MKL) for the calling thread from now on.
void keepCallerSingleThreaded();

// The intra-op threads a job gets when neither it nor setComputeThreads asks for a count: OpenMP's
// default as read when the module loaded (0 before keepCallerSingleThreaded ran).
int defaultComputeThreads();

}  // namespace progan
