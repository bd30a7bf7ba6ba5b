#!/usr/bin/env node
// Builds the native addon with cmake-js against the libtorch that scripts/setup-libtorch chose.
// Usage: node scripts/build.js [--rebuild] [--prebuild]   (TORCH_DIR overrides the choice)
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { resolveTorchDir } = require('./libtorch-location');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const torchDir = process.env.TORCH_DIR || resolveTorchDir(root);
if (!torchDir) {
  console.error('progan: libtorch is not set up. Run `npm run setup` first (see README, "How libtorch is found").');
  process.exit(1);
}
const verb = args.includes('--rebuild') ? 'rebuild' : 'build';
const cmakeArgs = [verb, '--CDTORCH_DIR=' + torchDir, '--parallel', String(Math.max(1, require('node:os').availableParallelism()))];
if (args.includes('--prebuild')) cmakeArgs.push('--CDPROGAN_PREBUILD=ON');
console.log(`progan: building the addon against ${torchDir}`);
const cli = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cli, ...cmakeArgs], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
