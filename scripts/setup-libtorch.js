#!/usr/bin/env node
// Puts libtorch where the package expects it: <package root>/.libtorch/torch. Never downloads.
// Order: LIBTORCH=<libtorch folder | Python torch package folder>, then an importable Python torch,
// then the pinned CPU wheel from the local pip index. `--cuda` installs the pinned CUDA wheel set
// into .libtorch-cuda/ instead. `--force` redoes the choice.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { resolveTorchDir, readTorchVersion } = require('./libtorch-location');

const PINNED_CPU = 'torch==2.13.0+cpu';
const PINNED_CUDA = [
  'torch==2.14.1', 'nvidia-cuda-runtime==13.0.96', 'nvidia-cuda-nvrtc==13.0.88', 'nvidia-cublas==13.1.1.3',
  'nvidia-cuda-cupti==13.0.85', 'nvidia-cudnn-cu13==9.24.0.43', 'nvidia-cufft==12.0.0.61', 'nvidia-cufile==1.15.1.6',
  'nvidia-curand==10.4.0.35', 'nvidia-cusolver==12.0.4.66', 'nvidia-cusparse==12.6.3.3',
  'nvidia-cusparselt-cu13==0.8.1', 'nvidia-nccl-cu13==2.30.7', 'nvidia-nvjitlink==13.4.92',
  'nvidia-nvshmem-cu13==3.4.5', 'nvidia-nvtx==13.0.85',
];
const SUPPORTED = /^2\.(1[1-4])\./;

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const python = process.env.PYTHON || 'python3';

function log(msg) { console.log(`progan setup: ${msg}`); }
function fail(msg) { console.error(`progan setup: ${msg}`); process.exit(1); }

function isTorchDir(dir) {
  return fs.existsSync(path.join(dir, 'lib')) && fs.existsSync(path.join(dir, 'include')) &&
    fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch'));
}

function link(target, source) {
  const base = path.join(root, '.libtorch');
  fs.rmSync(base, { recursive: true, force: true });
  fs.mkdirSync(base, { recursive: true });
  fs.symlinkSync(target, path.join(base, 'torch'));
  record(source, target);
}

function record(source, dir) {
  const version = readTorchVersion(dir);
  if (version && !SUPPORTED.test(version)) log(`warning: torch ${version} is outside the tested range 2.11 to 2.14`);
  fs.writeFileSync(path.join(root, '.libtorch', 'source.json'),
    JSON.stringify({ source, dir, version, python: fs.existsSync(path.join(dir, '__init__.py')) }, null, 2) + '\n');
  log(`using torch ${version ?? '(unknown version)'} from ${source}: ${dir}`);
}

function pipInstall(target, packages) {
  log(`installing ${packages[0]} from the local pip index into ${path.relative(root, target)}/ (offline)`);
  const r = spawnSync(python, ['-m', 'pip', 'install', '--no-deps', '--retries', '0', '--disable-pip-version-check',
    '--target', target, ...packages], { stdio: 'inherit' });
  if (r.status !== 0) {
    fail(`pip could not install ${packages[0]}. Possible solutions:\n` +
      `  - point LIBTORCH at a libtorch folder or a Python torch package folder: LIBTORCH=/path/to/torch npm run setup\n` +
      `  - install a Python torch 2.11 to 2.14 (\`${python} -c "import torch"\` must work) and rerun`);
  }
}

function setupCpu() {
  const existing = resolveTorchDir(root);
  if (existing && !args.includes('--force') && !process.env.LIBTORCH) {
    log(`already set up: torch ${readTorchVersion(existing)} at ${existing}`);
    return;
  }
  if (process.env.LIBTORCH) {
    const dir = path.resolve(process.env.LIBTORCH);
    const candidate = isTorchDir(dir) ? dir : path.join(dir, 'torch');
    if (!isTorchDir(candidate)) fail(`LIBTORCH=${dir} holds no libtorch (expected lib/, include/ and share/cmake/Torch)`);
    return link(candidate, 'LIBTORCH');
  }
  const probe = spawnSync(python, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'], { encoding: 'utf8' });
  if (probe.status === 0) {
    const dir = probe.stdout.trim();
    if (isTorchDir(dir)) return link(dir, `the Python torch of ${python}`);
  }
  const target = path.join(root, '.libtorch');
  fs.rmSync(target, { recursive: true, force: true });
  pipInstall(target, [PINNED_CPU]);
  record(`the pinned wheel ${PINNED_CPU}`, path.join(target, 'torch'));
}

function setupCuda() {
  const target = path.join(root, '.libtorch-cuda');
  if (fs.existsSync(path.join(target, 'torch', 'lib')) && !args.includes('--force')) {
    log(`CUDA libtorch already set up at ${target}`);
    return;
  }
  fs.rmSync(target, { recursive: true, force: true });
  pipInstall(target, PINNED_CUDA);
  log(`CUDA libtorch ${readTorchVersion(path.join(target, 'torch'))} in ${target}`);
}

if (args.includes('--cuda')) setupCuda();
else setupCpu();
