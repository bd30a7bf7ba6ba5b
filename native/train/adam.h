// Adam as the official ProGAN config uses it (β1 0, β2 0.99, ε 1e-8), with explicit state so a
// checkpoint can hold it and a change of level of detail can reset it (official
// reset_opt_for_new_lod). The update is torch.optim.Adam's (its fused kernel: one pass over
// parameter, gradient and both moments).
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
  // One update from the parameters' .grad() at learning rate `lr`. It first checks the gradients on
  // the device: if any is NaN or ±Inf, nothing changes (parameters, moments, step count) and
  // skipped() becomes 1 — all without a host sync, so a GPU step never waits on this check.
  void step(double lr);
  void reset();

  // Syncs with the device; for checkpoints and reports, not for every step.
  int64_t steps() const;
  void setSteps(int64_t s);
  // 1 when the last step() was skipped for non-finite gradients, else 0: float32 [1] on the device.
  const at::Tensor& skipped() const { return foundNonFinite_; }
  // First and second moments, one per parameter, in parameter order (for checkpoints).
  std::vector<at::Tensor>& firstMoments() { return m_; }
  std::vector<at::Tensor>& secondMoments() { return v_; }

 private:
  std::vector<at::Tensor> params_, m_, v_;
  AdamConfig config_;
  // On the parameters' device, float32 as the fused kernel wants; shared by every parameter.
  at::Tensor stepCount_, foundNonFinite_;
};

}  // namespace progan
