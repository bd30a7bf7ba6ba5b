// Precompiled header: the libtorch API shared by every translation unit (~20 s per file otherwise).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/functional.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>
#include <ATen/ATen.h>
#include <string>
#include <vector>
#include <map>
#include <memory>
