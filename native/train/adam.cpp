#include "train/adam.h"

#include <ATen/ATen.h>

#include <cmath>

namespace progan {

Adam::Adam(std::vector<at::Tensor> parameters, AdamConfig config) : params_(std::move(parameters)), config_(config) {
  for (const auto& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
}

void Adam::reset() {
  at::NoGradGuard noGrad;
  for (auto& t : m_) t.zero_();
  for (auto& t : v_) t.zero_();
  steps_ = 0;
}

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
  ++steps_;
  if (params.empty()) return;
  const double bc1 = 1.0 - std::pow(config_.beta1, double(steps_));
  const double bc2 = 1.0 - std::pow(config_.beta2, double(steps_));
  // Multi-tensor (foreach) kernels: a few passes over all parameters instead of ~10 ops each.
  at::_foreach_lerp_(m, grads, 1.0 - config_.beta1);
  at::_foreach_mul_(v, config_.beta2);
  at::_foreach_addcmul_(v, grads, grads, 1.0 - config_.beta2);
  auto denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, config_.epsilon);
  at::_foreach_addcdiv_(params, m, denom, -lr / bc1);
}

}  // namespace progan
