#include "train/compute_thread.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

// MKL's per-thread thread count, exported by libtorch builds that link MKL; weak, so that a libtorch
// without MKL still loads. mkl.h maps the C name mkl_set_num_threads_local to this symbol: the
// exported lower-case name is MKL's Fortran entry, which takes a pointer.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace progan {

namespace {

std::atomic<int> requestedThreads{0};
// The default intra-op thread count, read once on the loading thread before it is made
// single-threaded. ATen's intraop_default_num_threads() gave 1 on a 2-core VM, which left one core
// idle (small-preset 8² steps 72–89 ms instead of 50–60 ms with 2 threads).
std::atomic<int> defaultThreads{0};

// The intra-op threads of a job that asks for `threads` (0: setComputeThreads' count, else the default).
int threadsFor(int threads) {
  int want = threads > 0 ? threads : requestedThreads.load();
  if (want <= 0) want = defaultThreads.load() > 0 ? defaultThreads.load() : at::intraop_default_num_threads();
  return want;
}

class ComputeThread {
 public:
  ComputeThread() : thread_([this] { loop(); }) { thread_.detach(); }

  // False when another job is running.
  bool tryRun(const std::function<void()>& job, int threads) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (job_) return false;
    job_ = &job;
    threads_ = threads;
    done_ = false;
    wake_.notify_one();
    finished_.wait(lock, [&] { return done_; });
    job_ = nullptr;
    const auto error = std::exchange(error_, nullptr);
    lock.unlock();
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  void loop() {
    int applied = -1;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return job_ != nullptr && !done_; });
      const auto* job = job_;
      const int want = threadsFor(threads_);
      lock.unlock();
      std::exception_ptr error;
      try {
        if (want != applied) {  // the count is this thread's own OpenMP setting
          at::set_num_threads(want);
          applied = want;
        }
        (*job)();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      error_ = error;
      done_ = true;
      finished_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void()>* job_ = nullptr;
  int threads_ = 0;
  bool done_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// Never destroyed: the thread is detached and may be waiting for work when the process exits.
ComputeThread& computeThread() {
  static auto* thread = new ComputeThread();
  return *thread;
}

// `n` intra-op threads (OpenMP and MKL) on the calling thread; returns the previous counts.
std::pair<int, int> threadsHere(int n) {
  at::get_num_threads();  // ATen's own per-thread setup first, so that it does not undo the lines below
  const int omp = omp_get_max_threads();
  omp_set_num_threads(n);
  return {omp, MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(n) : 0};
}

// `n` intra-op threads on this thread while it lives.
class ThreadsHere {
 public:
  explicit ThreadsHere(int n) : saved_(threadsHere(n)) {}
  ~ThreadsHere() {
    omp_set_num_threads(saved_.first);
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(saved_.second);
  }
  ThreadsHere(const ThreadsHere&) = delete;
  ThreadsHere& operator=(const ThreadsHere&) = delete;

 private:
  std::pair<int, int> saved_;
};

}  // namespace

void runOnComputeThread(const std::function<void()>& job, int threads) {
  if (computeThread().tryRun(job, threads)) return;
  // The same thread count as on the compute thread, though two teams then share the cores: oneDNN
  // and ATen split their work by the thread count, so a loop that landed here with fewer threads
  // would round differently (a resumed run stopped matching the straight one bit for bit).
  ThreadsHere same(threadsFor(threads));
  job();
}

void setComputeThreads(int threads) { requestedThreads.store(threads); }

void keepCallerSingleThreaded() {
  // OpenMP's own default (OMP_NUM_THREADS, else the CPUs this process may run on), what an
  // unconfigured PyTorch script gets; ATen's intraop_default_num_threads() read 1 here on a 2-core VM.
  int unset = 0;
  defaultThreads.compare_exchange_strong(unset, omp_get_max_threads());
  threadsHere(1);
}

int defaultComputeThreads() { return defaultThreads.load(); }

}  // namespace progan
