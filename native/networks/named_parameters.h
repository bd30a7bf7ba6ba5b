// Parameters by name, for weight files, checkpoints and tests that load identical weights
// into an independent reference.
#pragma once
#include <torch/nn/module.h>

#include <string>
#include <utility>
#include <vector>

namespace progan {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

NamedTensors namedParameters(const torch::nn::Module& module, const std::string& prefix = "");
int64_t parameterCount(const torch::nn::Module& module);
// Copies every named tensor into the module's parameter of that name. All names must be present
// with identical shapes (strict), so a file from another architecture is refused, not half-loaded.
void assignParameters(torch::nn::Module& module, const NamedTensors& values, const std::string& prefix = "");

}  // namespace progan
