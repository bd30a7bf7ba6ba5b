#include "train/adam.h"

#include <ATen/ATen.h>

namespace progan {

Adam::Adam(std::vector<at::Tensor> parameters, AdamConfig config) : params_(std::move(parameters)), config_(config) {
  at::NoGradGuard noGrad;
  for (const auto& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
  const auto flags = at::TensorOptions().dtype(at::kFloat).device(params_.empty() ? at::kCPU : params_[0].device());
  stepCount_ = at::zeros({}, flags);
  foundNonFinite_ = at::zeros({1}, flags);
}

void Adam::reset() {
  at::NoGradGuard noGrad;
  // One multi-tensor launch per list on a GPU instead of one per tensor (~220 for the paper networks).
  at::_foreach_zero_(m_);
  at::_foreach_zero_(v_);
  stepCount_.zero_();
}

int64_t Adam::steps() const { return int64_t(stepCount_.item<double>()); }

void Adam::setSteps(int64_t s) { stepCount_.fill_(double(s)); }

void Adam::step(double lr) {
  at::NoGradGuard noGrad;
  // Only parameters with a gradient: the layers of resolutions not reached yet (most of a paper
  // network early on) are skipped, as torch.optim.Adam does. With β1 = 0 and the state reset at
  // every level-of-detail change this is exactly the update over all parameters (a zero gradient
  // moves nothing), at a fraction of the memory traffic.
  std::vector<at::Tensor> params, grads, m, v;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    params.push_back(params_[i]);
    grads.push_back(params_[i].grad());
    m.push_back(m_[i]);
    v.push_back(v_[i]);
  }
  foundNonFinite_.zero_();
  if (params.empty()) {
    stepCount_.add_(1);
    return;
  }
  // 1 if any gradient holds a NaN or Inf: one read of the gradients and a reduction, all on the
  // device (a NaN or Inf anywhere makes the summed norms non-finite).
  foundNonFinite_.copy_(at::stack(at::_foreach_norm(grads)).sum().isfinite().logical_not());
  // The step count advances unless skipped; the kernel reads it for the bias corrections and does
  // nothing at all when found_inf is 1.
  stepCount_.add_(1).sub_(foundNonFinite_.squeeze());
  const std::vector<at::Tensor> stepCounts(params.size(), stepCount_);
  at::_fused_adam_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, stepCounts, lr, config_.beta1, config_.beta2,
                   /*weight_decay=*/0.0, config_.epsilon, /*amsgrad=*/false, /*maximize=*/false,
                   /*grad_scale=*/std::nullopt, foundNonFinite_);
  // _fused_adam_ writes the parameters without bumping their version counters (checked on torch
  // 2.13; _foreach_lerp_ and copy_ do bump them). Anything keyed on a weight's version, such as the
  // Winograd kernel transforms (layers/winograd.cpp), would otherwise see a stale weight.
  for (auto& p : params) p.unsafeGetTensorImpl()->bump_version();
}

}  // namespace progan
