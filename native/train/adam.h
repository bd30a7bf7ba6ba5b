// Adam as the official ProGAN config uses it (β1 0, β2 0.99, ε 1e-8), with explicit state so a
// checkpoint can hold it and a change of level of detail can reset it (official
// reset_opt_for_new_lod). The update follows torch.optim.Adam's arithmetic exactly.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace progan {

struct AdamConfig {
  double beta1 = 0.0;
  double beta2 = 0.99;
  double epsilon = 1e-8;
};

class Adam {
 public:
  Adam(std::vector<at::Tensor> parameters, AdamConfig config);
  // One update from the parameters' .grad() at learning rate `lr`.
  void step(double lr);
  void reset();

  int64_t steps() const { return steps_; }
  void setSteps(int64_t s) { steps_ = s; }
  // First and second moments, one per parameter, in parameter order (for checkpoints).
  std::vector<at::Tensor>& firstMoments() { return m_; }
  std::vector<at::Tensor>& secondMoments() { return v_; }

 private:
  std::vector<at::Tensor> params_, m_, v_;
  AdamConfig config_;
  int64_t steps_ = 0;
};

}  // namespace progan
