// The training API: Trainer.create / Trainer.resume, trainPhase(), train(), sample(), save().
// Every step runs in C++ on a worker thread; this class validates, orchestrates and reports.
import fs from 'node:fs';
import path from 'node:path';
import { openDataset, type DatasetHeader } from '../dataset';
import { checkAlpha, checkResolution } from '../options';
import { native, type CudaGraphStats, type NativeTick, type NativeTrainer, type TrainerNetworkName } from '../native';
import type { NamedTensors } from '../safetensors';
import { Tensor, assertFinite, fromNative, toNative } from '../tensor';
import { CheckpointError, proganVersion, readCheckpoint, writeCheckpoint } from './checkpoint';
import { resolveTrainingOptions, type TrainingConfig, type TrainingOptionsInput } from './options';
import { createSchedule, type Schedule } from './schedule';

export type Progress = NativeTick;

export interface RunOptions {
  /** Called once per tick, in order; none are dropped. */
  onProgress?: (p: Progress) => void;
  /** Stops within one step; the trainer stays usable and saveable. */
  signal?: AbortSignal;
  /** Images per progress tick (default: about one tick per 2 % of the run, at least one step). */
  tickImages?: number;
  /**
   * Records every step of this run with the torch profiler and writes a Chrome trace (JSON) to this
   * file: each ATen op, forward and backward, with its input shapes (and the CUDA kernels on a GPU).
   * Open it in https://ui.perfetto.dev or chrome://tracing. A trace grows by about a megabyte per
   * step at paper channels: profile short runs.
   */
  profile?: string;
}

export interface TrainPhaseOptions extends RunOptions {
  resolution: number;
  phase: 'stable' | 'fade';
  /** Images to show in this phase. */
  images: number;
}

export interface TrainOptions extends RunOptions {
  /** Train until this many images have been shown in total (default: the schedule's totalKimg). */
  totalImages?: number;
}

export interface TrainerState {
  imagesShown: number;
  steps: number;
  resolution: number;
  alpha: number;
  lod: number;
  phase: 'stable' | 'fade';
  skippedD: number;
  skippedG: number;
  /** CUDA graph use so far (train option `cudaGraphs`). */
  cudaGraphs: CudaGraphStats;
  /** The last tick's losses, null before the first tick. */
  losses: { d: number; g: number; gradientPenalty: number; drift: number; wasserstein: number } | null;
}

export interface SampleOptions {
  /** The EMA generator (default) or the raw one. */
  ema?: boolean;
  /** Defaults to the current training resolution and α. */
  resolution?: number;
  alpha?: number;
  /** Class indices [N] (int32 or int64) or one-hot [N, labelSize], for conditional models. */
  labels?: Tensor;
}

export class Trainer {
  readonly schedule: Schedule;
  private lastTick: NativeTick | null = null;
  private running = false;

  private constructor(
    readonly options: TrainingConfig,
    readonly dataset: DatasetHeader,
    private readonly handle: NativeTrainer,
  ) {
    this.schedule = createSchedule(options.schedule);
  }

  static async create(input: TrainingOptionsInput): Promise<Trainer> {
    const options = resolveTrainingOptions(input);
    const { header, config } = describeDataset(options);
    return new Trainer(options, header, new (native().Trainer)({ ...options, device: resolveDevice(options.device), dataset: config }));
  }

  /** Continues exactly where a checkpoint stopped. `data` points at the dataset if it moved. */
  static async resume(checkpoint: string, overrides: { data?: string } = {}): Promise<Trainer> {
    const c = readCheckpoint(checkpoint);
    const options = { ...c.options, data: overrides.data ?? c.options.data };
    const { header, config } = describeDataset(options);
    const handle = new (native().Trainer)({ ...options, device: resolveDevice(options.device), dataset: config });
    try {
      handle.importState([...c.tensors].map(([k, t]) => [k, toNative(t, k)]), c.scalars);
    } catch (e) {
      throw new CheckpointError(checkpoint, (e as Error).message);
    }
    const trainer = new Trainer(options, header, handle);
    return trainer;
  }

  get state(): TrainerState {
    const s = this.handle.status();
    const point = this.currentPoint();
    const t = this.lastTick;
    return {
      imagesShown: s.imagesShown,
      steps: s.steps,
      resolution: point.resolution,
      alpha: point.alpha,
      lod: point.lod,
      phase: point.phase,
      skippedD: s.skippedD,
      skippedG: s.skippedG,
      cudaGraphs: s.cudaGraphs,
      losses: t ? { d: t.dLoss, g: t.gLoss, gradientPenalty: t.gradientPenalty, drift: t.drift, wasserstein: t.wasserstein } : null,
    };
  }

  /** Runs one phase: `stable` at α = 1, or `fade` with α rising from 0 to 1 over `images`. */
  async trainPhase(o: TrainPhaseOptions): Promise<Progress> {
    checkResolution(o.resolution, this.options.network.resolution);
    if (o.phase !== 'stable' && o.phase !== 'fade') throw new TypeError(`Expected 'stable' or 'fade' for phase but received ${String(o.phase)}`);
    if (o.phase === 'fade' && o.resolution === 4) throw new RangeError('There is nothing to fade in at 4×4: use a stable phase');
    if (!Number.isSafeInteger(o.images) || o.images <= 0) {
      throw new RangeError(`Expected a positive integer number of images for the phase length but received ${o.images}`);
    }
    const tick = this.tickImages(o.tickImages, o.images);
    const profile = profilePath(o.profile);
    return this.run(o, (onTick) => this.handle.runPhase(o.resolution, o.phase === 'fade', o.images, tick, onTick, profile));
  }

  /** Follows the growth schedule until `totalImages` have been shown. */
  async train(o: TrainOptions = {}): Promise<Progress> {
    const total = o.totalImages ?? Math.round(this.options.schedule.totalKimg * 1000);
    if (!Number.isSafeInteger(total) || total <= 0) throw new RangeError(`Expected a positive integer for totalImages but received ${total}`);
    const tick = this.tickImages(o.tickImages, Math.max(total - this.handle.status().imagesShown, 1));
    const profile = profilePath(o.profile);
    return this.run(o, (onTick) => this.handle.runSchedule(total, tick, onTick, profile));
  }

  sample(latents: Tensor, o: SampleOptions = {}): Tensor {
    const n = this.options.network;
    if (!(latents instanceof Tensor) || latents.shape.length !== 2 || latents.shape[1] !== n.latentSize) {
      throw new RangeError(`Expected latents of shape [N, ${n.latentSize}] but received ${latents instanceof Tensor ? `[${latents.shape.join(', ')}]` : typeof latents}`);
    }
    if (latents.dtype !== 'float32') throw new TypeError(`Expected float32 latents but received ${latents.dtype}`);
    assertFinite(latents, 'latents');
    const point = this.currentPoint();
    const resolution = o.resolution ?? point.resolution;
    const alpha = o.alpha ?? point.alpha;
    checkResolution(resolution, n.resolution);
    checkAlpha(alpha);
    let labels = null;
    if (n.labelSize > 0) {
      if (!o.labels) throw new TypeError(`This model is conditional: pass labels (class indices [N] or one-hot [N, ${n.labelSize}])`);
      labels = toNative(oneHotLabels(o.labels, latents.shape[0], n.labelSize), 'labels');
    }
    this.assertIdle();
    return fromNative(this.handle.sample(toNative(latents, 'latents'), labels, resolution, alpha, o.ema ?? true));
  }

  /** Writes a checkpoint atomically; the previous file at `file` survives until the rename. */
  save(file: string): void {
    this.assertIdle();
    const { tensors, scalars } = this.handle.exportState();
    writeCheckpoint(file, {
      options: this.options,
      scalars,
      tensors: new Map(tensors.map(([k, t]) => [k, fromNative(t)])),
      versions: { progan: proganVersion(), torch: native().versions().torch },
    });
  }

  /** Named parameters of one network (copies): 'generator', 'generatorEma' or 'discriminator'. */
  parameters(which: TrainerNetworkName): NamedTensors {
    this.assertIdle();
    return new Map(this.handle.parameters(which).map(([k, t]) => [k, fromNative(t)]));
  }

  setParameters(which: TrainerNetworkName, values: NamedTensors): void {
    this.assertIdle();
    this.handle.setParameters(which, [...values].map(([k, t]) => [k, toNative(t, k)]));
  }

  /** @internal One step on explicit inputs, returning losses and gradients (parity tests). */
  debugStep(...args: Parameters<NativeTrainer['debugStep']>): ReturnType<NativeTrainer['debugStep']> {
    this.assertIdle();
    return this.handle.debugStep(...args);
  }

  private currentPoint() {
    const s = this.handle.status();
    if (s.phase.images > 0 && s.phase.done > 0) {
      // After trainPhase the position is the phase's, not the schedule's.
      const alpha = s.phase.phase === 'fade' ? Math.min(s.phase.done / s.phase.images, 1) : 1;
      const lod = Math.log2(this.options.network.resolution / s.phase.resolution) + (1 - alpha);
      return { resolution: s.phase.resolution, alpha, lod, phase: alpha < 1 ? ('fade' as const) : ('stable' as const) };
    }
    return this.schedule.at(s.imagesShown);
  }

  private tickImages(requested: number | undefined, span: number): number {
    if (requested !== undefined) {
      if (!Number.isSafeInteger(requested) || requested <= 0) throw new RangeError(`Expected a positive integer for tickImages but received ${requested}`);
      return requested;
    }
    return Math.max(1, Math.round(span / 50));
  }

  private assertIdle(): void {
    if (this.running) throw new Error('The trainer is busy training; wait for the running phase to finish or abort it');
  }

  private async run(o: RunOptions, start: (onTick: (t: NativeTick) => void) => Promise<NativeTick>): Promise<Progress> {
    this.assertIdle();
    if (o.signal?.aborted) return { ...(this.lastTick ?? emptyTick()), stopped: true, finished: true };
    this.running = true;
    const stop = () => this.handle.requestStop();
    o.signal?.addEventListener('abort', stop, { once: true });
    try {
      let lastOfRun = null as NativeTick | null;
      const closing = await start((t) => {
        if (t.tickSteps > 0) this.lastTick = lastOfRun = t;
        o.onProgress?.(t);
      });
      // The closing report of a loop whose last tick was already sent carries no losses: resolve
      // with that last tick instead, flagged as the end.
      return closing.tickSteps === 0 && lastOfRun ? { ...lastOfRun, finished: true, stopped: closing.stopped } : closing;
    } finally {
      o.signal?.removeEventListener('abort', stop);
      this.running = false;
    }
  }
}

function profilePath(file: string | undefined): string | null {
  if (file === undefined) return null;
  if (typeof file !== 'string' || file === '') throw new TypeError(`Expected a file path for profile but received ${JSON.stringify(file)}`);
  const full = path.resolve(file);
  if (!fs.existsSync(path.dirname(full))) {
    throw new Error(`Cannot write the profile to ${full}: the folder ${path.dirname(full)} does not exist; create it first`);
  }
  return full;
}

/** The device a run uses: 'auto' takes the GPU when this build has CUDA kernels and one is visible. */
export function resolveDevice(requested: 'auto' | 'cpu' | 'cuda'): 'cpu' | 'cuda' {
  const addon = native();
  const cuda = addon.versions().build === 'cuda' && addon.cudaAvailable();
  if (requested === 'cuda' && !cuda) {
    throw new Error(
      addon.versions().build === 'cuda'
        ? 'device cuda was asked for but no GPU is visible to libtorch'
        : 'device cuda was asked for but this progan build has no CUDA kernels: run `npm run build:cuda` (see README)',
    );
  }
  return requested === 'auto' ? (cuda ? 'cuda' : 'cpu') : requested;
}

function emptyTick(): NativeTick {
  return {
    imagesShown: 0, steps: 0, tickSteps: 0, resolution: 4, minibatch: 0, alpha: 1, lod: 0, learningRate: 0, phase: 'stable',
    dLoss: 0, gLoss: 0, gradientPenalty: 0, drift: 0, wasserstein: 0, labelLoss: 0, imagesPerSecond: 0, seconds: 0,
    skippedD: 0, skippedG: 0, finished: true, stopped: false,
  };
}

function oneHotLabels(labels: Tensor, n: number, size: number): Tensor {
  if (labels.shape.length === 2) {
    if (labels.shape[0] !== n || labels.shape[1] !== size) throw new RangeError(`Expected labels of shape [${n}, ${size}] but received [${labels.shape.join(', ')}]`);
    return new Tensor(labels.toFloat32Array(), labels.shape, 'float32');
  }
  if (labels.shape.length !== 1 || labels.shape[0] !== n) throw new RangeError(`Expected ${n} class indices but received [${labels.shape.join(', ')}]`);
  const out = new Float32Array(n * size);
  const values = labels.toFloat32Array();
  values.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= size) throw new RangeError(`Expected class indices from 0 to ${size - 1} but label ${i} is ${c}`);
    out[i * size + c] = 1;
  });
  return new Tensor(out, [n, size], 'float32');
}

/** Validates the dataset against the network and describes it for the C++ reader. */
function describeDataset(options: TrainingConfig): { header: DatasetHeader; config: object } {
  const file = path.resolve(options.data);
  if (!fs.existsSync(file)) {
    throw new Error(`The dataset ${options.data} does not exist. Make one with \`progan prepare <images> ${options.data} --resolution ${options.network.resolution}\``);
  }
  const ds = openDataset(file);
  const header = ds.header;
  ds.close();
  const n = options.network;
  if (header.resolution !== n.resolution) {
    throw new Error(
      `The dataset ${options.data} holds ${header.resolution}×${header.resolution} images but the network's final resolution is ${n.resolution}. ` +
        `Train with --resolution ${header.resolution}, or prepare the data again with --resolution ${n.resolution}`,
    );
  }
  if (header.channels !== n.channels) {
    throw new Error(`The dataset ${options.data} has ${header.channels} channel(s) but the network expects ${n.channels}: set channels to ${header.channels}`);
  }
  if (n.labelSize > 0 && header.labelSize !== n.labelSize) {
    throw new Error(`The network is conditional on ${n.labelSize} classes but the dataset ${options.data} has ${header.labelSize || 'no'} labels`);
  }
  if (header.count < 1) throw new Error(`The dataset ${options.data} holds no images`);
  return {
    header,
    config: {
      path: file,
      count: header.count,
      channels: header.channels,
      resolution: header.resolution,
      levels: header.levels.map((l) => ({ resolution: l.resolution, offset: l.offset })),
      labelsOffset: n.labelSize > 0 && header.labels ? header.labels.offset : -1,
      fileSize: fs.statSync(file).size,
    },
  };
}
