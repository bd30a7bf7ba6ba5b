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
  std::vector<at::Tensor> grads;
  grads.reserve(params_.size());
  for (const auto& p : params_) grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
  ++steps_;
  const double bc1 = 1.0 - std::pow(config_.beta1, double(steps_));
  const double bc2 = 1.0 - std::pow(config_.beta2, double(steps_));
  // Multi-tensor (foreach) kernels: a few passes over all parameters instead of ~10 ops each.
  at::_foreach_lerp_(m_, grads, 1.0 - config_.beta1);
  at::_foreach_mul_(v_, config_.beta2);
  at::_foreach_addcmul_(v_, grads, grads, 1.0 - config_.beta2);
  auto denom = at::_foreach_sqrt(v_);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, config_.epsilon);
  at::_foreach_addcdiv_(params_, m_, denom, -lr / bc1);
}

}  // namespace progan
