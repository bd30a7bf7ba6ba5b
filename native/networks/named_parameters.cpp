#include "networks/named_parameters.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <set>

namespace progan {

NamedTensors namedParameters(const torch::nn::Module& module, const std::string& prefix) {
  NamedTensors out;
  for (const auto& p : module.named_parameters()) out.emplace_back(prefix + p.key(), p.value());
  return out;
}

int64_t parameterCount(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

void assignParameters(torch::nn::Module& module, const NamedTensors& values, const std::string& prefix) {
  auto params = module.named_parameters();
  std::set<std::string> seen;
  for (const auto& [fullName, value] : values) {
    if (fullName.rfind(prefix, 0) != 0) continue;
    const auto name = fullName.substr(prefix.size());
    auto* target = params.find(name);
    TORCH_CHECK(target != nullptr, "The weights hold a tensor '", fullName,
                "' that this network does not have: they were saved from a different architecture");
    TORCH_CHECK(target->sizes() == value.sizes(), "Expected shape ", target->sizes(), " for '", fullName,
                "' but the weights hold ", value.sizes(), ": they were saved from a different architecture");
    seen.insert(name);
  }
  for (const auto& p : params)
    TORCH_CHECK(seen.count(p.key()), "The weights lack '", prefix + p.key(),
                "': they were saved from a different architecture or are incomplete");
  torch::NoGradGuard noGrad;
  for (const auto& [fullName, value] : values) {
    if (fullName.rfind(prefix, 0) != 0) continue;
    params[fullName.substr(prefix.size())].copy_(value);
  }
}

}  // namespace progan
