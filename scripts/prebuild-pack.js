#!/usr/bin/env node
// Builds the prebuilt binary that `npm pack` ships: prebuilds/linux-x64/progan.node, N-API 8,
// stripped, RUNPATH $ORIGIN/../../.libtorch/torch/lib (= <package root>/.libtorch/torch/lib, where
// `progan setup` puts libtorch). libtorch itself is never bundled. The binary is tied to the
// libtorch minor version it is built against (the loader checks it).
//
// Usage: node scripts/prebuild-pack.js [--rebuild]    (TORCH_DIR overrides the setup choice)
//
// prebuildify moves the .node it finds in <cwd>/build/Release. It runs here on a staging folder
// (build/prebuild-stage) with --out at the package root; scripts/prebuild-cmake runs the normal
// incremental build, which links the relocatable build/prebuild/progan.node beside the development
// build/Release/progan.node from the same objects, and stages the former.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { resolveTorchDir, readTorchVersion } = require('./libtorch-location');

const root = path.resolve(__dirname, '..');
const torchDir = process.env.TORCH_DIR || resolveTorchDir(root);
if (!torchDir) {
  console.error('progan prebuild: libtorch is not set up. Run `npm run setup` first (see README, "How libtorch is found").');
  process.exit(1);
}
const wrapper = path.join(__dirname, 'prebuild-cmake');
fs.chmodSync(wrapper, 0o755); // prebuildify execs it directly (no shell on Linux)

const stage = path.join(root, 'build', 'prebuild-stage');
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(path.join(stage, 'build', 'Release'), { recursive: true });
// prebuildify names the file after this package.json's name: prebuilds/linux-x64/progan.node
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify({ name: require('../package.json').name }) + '\n');

console.log(`progan prebuild: building against torch ${readTorchVersion(torchDir) ?? '?'} at ${torchDir}`);
const env = { ...process.env, TORCH_DIR: torchDir };
if (process.argv.includes('--rebuild')) env.PROGAN_PREBUILD_VERB = 'rebuild';
const r = spawnSync(process.execPath,
  [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--node-gyp', wrapper, '--out', root, stage],
  { cwd: root, stdio: 'inherit', env });
const out = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'progan.node');
if (r.status === 0 && fs.existsSync(out)) {
  console.log(`progan prebuild: ${path.relative(root, out)} (${Math.round(fs.statSync(out).size / 1024)} KB)`);
} else {
  console.error('progan prebuild: failed');
  process.exit(r.status || 1);
}
