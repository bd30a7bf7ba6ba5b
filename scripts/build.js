#!/usr/bin/env node
// Builds the native addon with cmake-js against the libtorch that scripts/setup-libtorch chose.
// Usage: node scripts/build.js [--rebuild] [--cuda]
//   (one build links both build/Release/progan.node and the relocatable build/prebuild/progan.node)
//   --cuda  the CUDA variant into build-cuda/ against .libtorch-cuda (npm run setup -- --cuda) or
//           TORCH_DIR (e.g. a GPU runner's own Python torch); CPU builds never need nvcc.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { resolveTorchDir } = require('./libtorch-location');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const cuda = args.includes('--cuda');
const cudaWheel = path.join(root, '.libtorch-cuda', 'torch');
const torchDir = process.env.TORCH_DIR || (cuda ? (fs.existsSync(cudaWheel) ? cudaWheel : null) : resolveTorchDir(root));
if (!torchDir) {
  console.error(cuda
    ? 'progan: no CUDA libtorch. Run `npm run setup -- --cuda`, or set TORCH_DIR to a CUDA torch (e.g. python3 -c "import torch, os; print(os.path.dirname(torch.__file__))").'
    : 'progan: libtorch is not set up. Run `npm run setup` first (see README, "How libtorch is found").');
  process.exit(1);
}
const verb = args.includes('--rebuild') ? 'rebuild' : 'build';
const cmakeArgs = [verb, '--CDTORCH_DIR=' + torchDir, '--parallel', String(Math.max(1, os.availableParallelism()))];
if (cuda) {
  cmakeArgs.push('--out', 'build-cuda', '--CDPROGAN_CUDA=ON');
  // The pip wheel set keeps nvrtc beside torch, where FindCUDAToolkit does not look.
  const nvrtc = path.join(path.dirname(torchDir), 'nvidia', 'cu13', 'lib', 'libnvrtc.so.13');
  if (fs.existsSync(nvrtc)) cmakeArgs.push('--CDCUDA_nvrtc_LIBRARY=' + nvrtc);
}
console.log(`progan: building the ${cuda ? 'CUDA' : 'CPU'} addon against ${torchDir}`);
const cli = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cli, ...cmakeArgs], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
