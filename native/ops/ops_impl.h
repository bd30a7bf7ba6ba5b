// Which implementation an op with a reference takes: `Auto`, the fused kernel or analytic
// derivatives where there are any, or `Reference`, plain ATen ops differentiated by autograd.
// Parity tests and benchmarks run both.
#pragma once

namespace progan {

enum class OpsImpl { Auto, Reference };

}  // namespace progan
