// A whole training step recorded once as a CUDA graph and replayed. At the small resolutions a
// step is ~650 short kernels, and launching them one by one from the host costs more time than the
// GPU spends running them (paper 8² on an H100: ~9 ms of kernels in a 17 ms step); a replay
// launches them all at once.
//
// The step's work runs on a side stream, ordered after the caller's stream before and before it
// after, so the caller sees the usual stream semantics. Capture needs what a captured step must
// not do mid-capture done beforehand: cuDNN's algorithm search, the lazy handle and workspace
// allocations, and the cached constants. The trainer therefore runs a few eager steps on the same
// side stream (runEager) before capturing.
//
// A replay repeats the recorded kernels with the values the host passed at capture (the learning
// rate, which blends run): the trainer keys a graph on those and captures again when they change,
// and passes what changes every step (the EMA's β, a fade's α) in tensors. Tensors the
// graph reads or writes keep their addresses: the inputs are copied into the recorded ones before
// each replay, parameters and optimizer state are updated in place, and the outputs (the step's
// figures) are overwritten by the next replay.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

namespace progan {

class StepGraph {
 public:
  using Body = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

  // Whether this build can record CUDA graphs (the CUDA build).
  static bool supported();

  // Runs body(inputs) eagerly on the side stream of `device` (the warm-up before a capture).
  static at::Tensor runEager(const at::Device& device, const std::vector<at::Tensor>& inputs, const Body& body);

  // Records body over copies of `inputs` (their shapes, dtypes and device; undefined ones stay
  // undefined), without running it. Throws if the body does something a capture cannot hold.
  StepGraph(const std::vector<at::Tensor>& inputs, const Body& body);
  ~StepGraph();

  // Copies `inputs` into the recorded ones and replays; returns the recorded output, valid until
  // the next replay.
  at::Tensor replay(const std::vector<at::Tensor>& inputs);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace progan
