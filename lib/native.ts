// Loads the native addon, or explains in one error why it cannot and what to do about it.
import fs from 'node:fs';
import path from 'node:path';
import type { NativeTensor } from './tensor';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const location = require('../scripts/libtorch-location.js') as {
  resolveTorchDir(root: string): string | null;
  readTorchVersion(dir: string): string | null;
  readSource(root: string): { source: string; dir: string; version: string } | null;
};

export const packageRoot = path.resolve(__dirname, '..');

/** The surface binding/addon.cpp exports. */
export interface NativeAddon {
  versions(): { torch: string; threads: number; parallel: string; build: 'cpu' | 'cuda' };
  cudaAvailable(): boolean;
  /** The CUDA caching allocator's bytes on the current GPU (CUDA build only); `true` first resets the peaks. */
  cudaMemory(resetPeak?: boolean): { allocatedBytes: number; peakAllocatedBytes: number; reservedBytes: number; peakReservedBytes: number };
  /** Test and benchmark entry: one op with first and second derivatives (binding/ops_check.cpp). */
  opDerivatives(spec: {
    op: 'upsampleLerp' | 'fadeReals' | 'penalty' | 'upsampleConv' | 'convDownsample' | 'convolution' | 'winogradConvolution' | 'leakyRelu' | 'biasLeakyRelu' | 'pixelNorm' | 'matrixProduct' | 'minibatchStddev';
    impl: 'auto' | 'reference';
    /** Where the op runs ('cpu' default; 'cuda' in a CUDA build with a GPU): the tensors travel there and back. */
    device?: 'cpu' | 'cuda';
    inputs: NativeTensor[];
    directions: NativeTensor[];
    gradOutput: NativeTensor;
    alpha?: number;
    /** `upsampleLerp`, `fadeReals`: α as a 0-dim tensor (how a recorded CUDA graph step passes it). */
    alphaOnDevice?: boolean;
    lambda?: number;
    gamma?: number;
    k?: number;
    stride?: number;
    padding?: number;
    transposed?: boolean;
    /** `convolution`, `upsampleConv`, `convDownsample` (impl 'auto'): every kernel takes its tensors channels-last (NHWC);
     * `biasLeakyRelu`, `pixelNorm`, `winogradConvolution`: the input arrives channels-last. */
    channelsLast?: boolean;
    /** `convolution` (impl 'auto', 3×3, stride 1, padding 1): the weight gradient as matrix products (layers/gemm_weight_grad.h). */
    gemmWeightGrad?: boolean;
    /** `pixelNorm`: ε. */
    epsilon?: number;
    group?: number;
    parts?: number;
  }): {
    output: NativeTensor;
    /** The output is a 4-D tensor laid out channels-last (NHWC) in memory (and not also NCHW-contiguous). */
    outputChannelsLast: boolean;
    gradients: NativeTensor[];
    gradientsNoGraph: NativeTensor[];
    gradOutputSecond: NativeTensor;
    inputsSecond: NativeTensor[];
  };
  randn(shape: number[], seed: number, dtype: 'float32' | 'float64'): NativeTensor;
  setThreads(n: number): void;
  /** The training host allocator (native/train/host_allocator.h); a number first sets its idle cap in bytes. */
  hostCache(capBytes?: number): { installed: boolean; idleBytes: number; capBytes: number };
  Networks: new (config: object, seed: number) => NativeNetworks;
  Trainer: new (config: object) => NativeTrainer;
  scheduleAt(config: object, imagesShown: number): object;
}

/** One tick of a training loop, as binding/trainer_wrap.cpp reports it. */
export interface NativeTick {
  imagesShown: number;
  steps: number;
  tickSteps: number;
  resolution: number;
  minibatch: number;
  alpha: number;
  lod: number;
  learningRate: number;
  phase: 'stable' | 'fade';
  dLoss: number;
  gLoss: number;
  gradientPenalty: number;
  drift: number;
  wasserstein: number;
  labelLoss: number;
  imagesPerSecond: number;
  seconds: number;
  skippedD: number;
  skippedG: number;
  finished: boolean;
  stopped: boolean;
}

export type TrainerNetworkName = 'generator' | 'generatorEma' | 'discriminator';

export interface NativeStepInputs {
  reals: NativeTensor;
  realLabels: NativeTensor | null;
  latentsD: NativeTensor;
  u: NativeTensor;
  latentsG: NativeTensor;
  fakeLabels: NativeTensor | null;
}

export interface NativeTrainer {
  runSchedule(untilImages: number, tickImages: number, onTick: (t: NativeTick) => void, profile: string | null): Promise<NativeTick>;
  runPhase(resolution: number, fade: boolean, images: number, tickImages: number, onTick: (t: NativeTick) => void, profile: string | null): Promise<NativeTick>;
  requestStop(): void;
  sample(latents: NativeTensor, labels: NativeTensor | null, resolution: number, alpha: number, ema: boolean): NativeTensor;
  exportState(): { tensors: NamedNativeTensors; scalars: Record<string, number> };
  importState(tensors: NamedNativeTensors, scalars: Record<string, number>): void;
  debugStep(
    point: { resolution: number; alpha: number; learningRate: number },
    inputs: NativeStepInputs,
  ): {
    stats: { dLoss: number; gLoss: number; gradientPenalty: number; drift: number; wasserstein: number; labelLoss: number; dSkipped: boolean; gSkipped: boolean };
    discriminatorGradients: NamedNativeTensors;
    generatorGradients: NamedNativeTensors;
  };
  status(): {
    imagesShown: number;
    steps: number;
    skippedD: number;
    skippedG: number;
    lastLod: number;
    phase: { resolution: number; phase: 'stable' | 'fade'; images: number; done: number };
    cudaGraphs: CudaGraphStats;
  };
  parameters(which: TrainerNetworkName): NamedNativeTensors;
  setParameters(which: TrainerNetworkName, values: NamedNativeTensors): void;
}

/** How the CUDA graph path has served a trainer's steps (always zeros on the CPU). */
export interface CudaGraphStats {
  /** Graphs recorded (one per resolution, minibatch, learning rate and EMA β met in stable phases). */
  captures: number;
  /** Steps that ran as a replay. */
  replays: number;
  /** Why graphs were turned off for this trainer (a capture failed), else null. */
  failure: string | null;
}

export type NetworkName = 'generator' | 'discriminator';
export type NamedNativeTensors = [string, NativeTensor][];

export interface NativeNetworks {
  forward(which: NetworkName, input: NativeTensor, resolution: number, alpha: number, labels: NativeTensor | null): NativeTensor;
  forwardBackward(
    which: NetworkName,
    input: NativeTensor,
    resolution: number,
    alpha: number,
    labels: NativeTensor | null,
    gradOutput: NativeTensor,
  ): { output: NativeTensor; inputGrad: NativeTensor; gradients: NamedNativeTensors };
  parameters(which: NetworkName): NamedNativeTensors;
  setParameters(which: NetworkName, values: NamedNativeTensors): void;
  parameterCount(which: NetworkName): number;
  setDtype(dtype: 'float32' | 'float64'): void;
}

export class NativeLoadError extends Error {
  constructor(cause: string, solutions: string[], detail?: string) {
    super(
      `progan could not load its native addon: ${cause}\n` +
        `Possible solutions:\n${solutions.map((s) => `- ${s}`).join('\n')}` +
        (detail ? `\nDetail: ${detail}` : ''),
    );
    this.name = 'NativeLoadError';
  }
}

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  cached ??= load();
  return cached;
}

/** The CUDA variant (npm run build:cuda), used when present and a GPU is visible. */
export const cudaAddonPath = path.join(packageRoot, 'build-cuda', 'Release', 'progan.node');

function gpuVisible(): boolean {
  if (process.env.PROGAN_DEVICE === 'cpu') return false;
  return fs.existsSync('/dev/nvidiactl') || fs.existsSync('/proc/driver/nvidia/gpus');
}

/** Which binary the loader picks, without loading it (null when none was built). */
export function addonPath(): string | null {
  if (fs.existsSync(cudaAddonPath) && gpuVisible()) return cudaAddonPath;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const gypBuild = require('node-gyp-build') as { path(dir: string): string };
  try {
    return gypBuild.path(packageRoot);
  } catch {
    return null;
  }
}

/** The libtorch version a binary was compiled against, read from its build tag. */
export function builtTorchVersion(file: string): string | null {
  const m = fs.readFileSync(file).toString('latin1').match(/progan-torch-version:([^;\0]+);/);
  return m ? m[1] : null;
}

const minor = (v: string) => v.split('.').slice(0, 2).join('.');

// OpenMP's wait between parallel regions, which must be in the environment before libgomp starts
// (here, before the first require). All multi-threaded work runs on one compute thread, so there is
// one team, and its worker spins for a short while before it sleeps (libgomp's default policy with
// 10,000 spins instead of 300,000): a step runs hundreds of regions, and waking a sleeping worker
// for each cost a small-preset 8² step 20 % (native/train/compute_thread.h). Spinning threads
// that other processes need are what makes torch crawl once cores are shared (30× slower seen with
// several teams): the spin stays short, and a policy the user sets (OMP_WAIT_POLICY=PASSIVE for a
// busy machine) is left alone.
function load(): NativeAddon {
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT ??= '10000';
  const file0 = addonPath();
  if (file0 === cudaAddonPath) {
    // The CUDA build finds its libtorch through the RUNPATH it was linked with (TORCH_DIR).
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file0) as NativeAddon;
      if (process.env.PROGAN_QUIET !== '1') console.error(`progan: using the CUDA build ${path.relative(process.cwd(), file0)}`);
      return addon;
    } catch (e) {
      throw new NativeLoadError(`loading the CUDA build ${file0} failed`, [
        'rebuild it against this machine\'s CUDA torch: TORCH_DIR=<torch folder> npm run build:cuda',
        'or use the CPU build: PROGAN_DEVICE=cpu',
      ], (e as Error).message);
    }
  }
  const setup = '`npx progan setup` (or `npm run setup` in a clone) puts libtorch in place, offline';
  const torchDir = location.resolveTorchDir(packageRoot);
  if (!torchDir) {
    throw new NativeLoadError(`libtorch is not set up in ${path.join(packageRoot, '.libtorch')}`, [
      setup,
      'or point it at an existing one: LIBTORCH=/path/to/libtorch-or-python-torch npx progan setup',
    ]);
  }
  const file = addonPath();
  if (!file) {
    throw new NativeLoadError('the addon was never built and no prebuilt binary matches this platform', [
      '`npm run build` (needs cmake and a C++20 compiler) builds it against the libtorch that setup chose',
    ]);
  }
  const installed = location.readTorchVersion(torchDir);
  const built = builtTorchVersion(file);
  if (installed && built && minor(installed) !== minor(built)) {
    throw new NativeLoadError(
      `${path.relative(packageRoot, file)} was built against libtorch ${built} but ${torchDir} holds ${installed}`,
      [
        `\`npx progan setup --force\` with LIBTORCH pointing at a libtorch ${minor(built)}.x`,
        `or rebuild against ${installed}: \`npm run build\``,
      ],
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeAddon;
  } catch (e) {
    throw new NativeLoadError(
      `loading ${file} failed`,
      [
        `${setup}; then \`npm run build\` if you built from source`,
        `check that ${path.join(torchDir, 'lib')} holds libtorch_cpu.so for torch ${built ?? installed ?? '?'}`,
      ],
      (e as Error).message,
    );
  }
}
