// Training options: one validated object with the paper's defaults (PAPER.md), resolved per
// preset, recorded in options.json and in every checkpoint, and sent to C++ as is.
import { z } from 'zod';
import { networkOptionsSchema, parseOrThrow, resolveNetworkOptions, type NetworkConfig, type PresetName } from '../options';

const finite = (name: string, min = -Infinity, max = Infinity) =>
  z.number().refine((v) => Number.isFinite(v) && v >= min && v <= max, {
    error: (i) => `Expected a finite number${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` ≤ ${max}` : ''} for ${name} but received ${String(i.input)}`,
  });
const positive = (name: string) =>
  z.number().refine((v) => Number.isFinite(v) && v > 0, {
    error: (i) => `Expected a positive finite number for ${name} but received ${String(i.input)}`,
  });
const positiveInt = (name: string) =>
  z.number().refine((v) => Number.isSafeInteger(v) && v > 0, {
    error: (i) => `Expected a positive integer for ${name} but received ${String(i.input)}`,
  });
/** A number for every resolution, or a table { "4": …, "8": … } with a base for the rest. */
const perResolution = (name: string, value: z.ZodType<number>, kind: string) =>
  z.union([value, z.record(z.string().regex(/^\d+$/, `Expected resolutions as keys of ${name}`), value)], {
    error: (i) => `Expected a ${kind} or a table of them by resolution for ${name} but received ${describeInput(i.input)}`,
  });
/** NaN and ±Infinity stay visible (JSON.stringify would print null). */
const describeInput = (v: unknown): string =>
  typeof v === 'object' && v !== null ? JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)) : String(v);

export const scheduleSchema = z
  .object({
    startResolution: z.number().int().min(4).optional(),
    stableKimg: finite('schedule.stableKimg', 0).optional(),
    fadeKimg: finite('schedule.fadeKimg', 0).optional(),
    minibatch: perResolution('schedule.minibatch', positiveInt('schedule.minibatch'), 'positive integer').optional(),
    minibatchBase: positiveInt('schedule.minibatchBase').optional(),
    learningRate: perResolution('schedule.learningRate', positive('schedule.learningRate'), 'positive finite number').optional(),
    learningRateBase: positive('schedule.learningRateBase').optional(),
    totalKimg: positive('schedule.totalKimg').optional(),
  })
  .strict();

export const trainingOptionsSchema = z
  .object({
    data: z.string({ error: 'Expected a dataset file path for data (make one with `progan prepare`)' }),
    network: networkOptionsSchema.partial().optional(),
    schedule: scheduleSchema.optional(),
    loss: z
      .object({
        lambda: finite('loss.lambda', 0).optional(),
        gamma: positive('loss.gamma').optional(),
        drift: finite('loss.drift', 0).optional(),
        gradientPenaltyScale: z.enum(['official', 'native']).optional(),
        conditionWeight: finite('loss.conditionWeight', 0).optional(),
      })
      .strict()
      .optional(),
    adam: z
      .object({
        beta1: finite('adam.beta1', 0, 0.999999).optional(),
        beta2: finite('adam.beta2', 0, 0.999999).optional(),
        epsilon: positive('adam.epsilon').optional(),
      })
      .strict()
      .optional(),
    ema: z
      .object({
        beta: finite('ema.beta', 0, 1).optional(),
        halfLifeKimg: finite('ema.halfLifeKimg', 0).optional(),
        rampup: finite('ema.rampup', 0).optional(),
      })
      .strict()
      .optional(),
    mirror: z.boolean().optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    /** Intra-op threads of the training work; 0 (default): OMP_NUM_THREADS, else one per CPU this process may use. */
    threads: z.number().int().min(0).max(1024).optional(),
    /** 'auto': the GPU when this build has CUDA kernels and a GPU is visible, else the CPU. */
    device: z.enum(['auto', 'cpu', 'cuda']).optional(),
    /**
     * On a GPU, each step after two warm-up steps replays one recorded CUDA graph instead of
     * launching its ~650–950 kernels one by one (same math; a fade's α is read from the device, so
     * one recording serves a whole fade). The CPU always runs eagerly.
     */
    cudaGraphs: z.boolean().optional(),
    /**
     * On a GPU, cuDNN uses only deterministic algorithms (a process-wide libtorch setting, kept once
     * set), so two runs from one seed give the same weights; some convolutions get slower. The CPU
     * is deterministic either way.
     */
    deterministic: z.boolean().optional(),
  })
  .strict();

export type TrainingOptionsInput = z.input<typeof trainingOptionsSchema>;

export interface ScheduleConfig {
  startResolution: number;
  finalResolution: number;
  stableKimg: number;
  fadeKimg: number;
  minibatch: Record<string, number>;
  minibatchBase: number;
  learningRate: Record<string, number>;
  learningRateBase: number;
  totalKimg: number;
}

export interface TrainingConfig {
  data: string;
  network: NetworkConfig;
  schedule: ScheduleConfig;
  loss: { lambda: number; gamma: number; drift: number; gradientPenaltyScale: 'official' | 'native'; conditionWeight: number };
  adam: { beta1: number; beta2: number; epsilon: number };
  ema: { beta: number; halfLifeKimg: number; rampup: number };
  mirror: boolean;
  seed: number;
  threads: number;
  device: 'auto' | 'cpu' | 'cuda';
  cudaGraphs: boolean;
  deterministic: boolean;
}

/** The device options' defaults (also what a checkpoint written before an option existed gets). */
export const DEVICE_DEFAULTS = { device: 'auto', cudaGraphs: true, deterministic: false } as const;

/** Training defaults per preset. paper: official v2, 1 GPU. small: a CPU demo that grows in minutes. */
const TRAINING_PRESETS: Record<PresetName, Omit<TrainingConfig, 'data' | 'network' | 'seed' | 'threads' | 'device' | 'cudaGraphs' | 'deterministic'>> = {
  paper: {
    schedule: {
      startResolution: 4,
      finalResolution: 1024,
      stableKimg: 600,
      fadeKimg: 600,
      minibatch: { 4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4 },
      minibatchBase: 4,
      learningRate: { 1024: 0.0015 },
      learningRateBase: 0.001,
      totalKimg: 12000,
    },
    loss: { lambda: 10, gamma: 1, drift: 0.001, gradientPenaltyScale: 'official', conditionWeight: 1 },
    adam: { beta1: 0, beta2: 0.99, epsilon: 1e-8 },
    ema: { beta: 0.999, halfLifeKimg: 0, rampup: 0 },
    mirror: false,
  },
  cifar: {
    schedule: {
      startResolution: 4,
      finalResolution: 32,
      stableKimg: 600,
      fadeKimg: 600,
      minibatch: {},
      minibatchBase: 64,
      learningRate: {},
      learningRateBase: 0.001,
      totalKimg: 12000,
    },
    loss: { lambda: 10, gamma: 750, drift: 0.001, gradientPenaltyScale: 'official', conditionWeight: 1 },
    adam: { beta1: 0, beta2: 0.99, epsilon: 1e-8 },
    ema: { beta: 0.999, halfLifeKimg: 0, rampup: 0 },
    mirror: false,
  },
  // Short phases need a short EMA half-life with a ramp-up (PAPER.md: β 0.999 lags ~700 steps).
  small: {
    schedule: {
      startResolution: 4,
      finalResolution: 64,
      stableKimg: 6,
      fadeKimg: 6,
      minibatch: {},
      minibatchBase: 16,
      learningRate: {},
      learningRateBase: 0.002,
      totalKimg: 60,
    },
    loss: { lambda: 10, gamma: 1, drift: 0.001, gradientPenaltyScale: 'official', conditionWeight: 1 },
    adam: { beta1: 0, beta2: 0.99, epsilon: 1e-8 },
    ema: { beta: 0.999, halfLifeKimg: 0.5, rampup: 0.05 },
    mirror: false,
  },
};

export function resolveTrainingOptions(input: TrainingOptionsInput): TrainingConfig {
  const o = parseOrThrow(trainingOptionsSchema, input, 'training options');
  const network = resolveNetworkOptions(o.network ?? {});
  const base = TRAINING_PRESETS[network.preset];
  const s = o.schedule ?? {};
  const table = (v: number | Record<string, number> | undefined, fallback: Record<string, number>) =>
    v === undefined ? { ...fallback } : typeof v === 'number' ? {} : { ...v };
  const schedule: ScheduleConfig = {
    startResolution: s.startResolution ?? base.schedule.startResolution,
    finalResolution: network.resolution,
    stableKimg: s.stableKimg ?? base.schedule.stableKimg,
    fadeKimg: s.fadeKimg ?? base.schedule.fadeKimg,
    minibatch: table(s.minibatch, base.schedule.minibatch),
    minibatchBase: typeof s.minibatch === 'number' ? s.minibatch : (s.minibatchBase ?? base.schedule.minibatchBase),
    learningRate: table(s.learningRate, base.schedule.learningRate),
    learningRateBase: typeof s.learningRate === 'number' ? s.learningRate : (s.learningRateBase ?? base.schedule.learningRateBase),
    totalKimg: s.totalKimg ?? base.schedule.totalKimg,
  };
  const start = schedule.startResolution;
  if ((start & (start - 1)) !== 0 || start > network.resolution) {
    throw new TypeError(`Expected a power of two from 4 to ${network.resolution} for schedule.startResolution but received ${start}`);
  }
  for (const [key, n] of Object.entries(schedule.minibatch)) checkStddevGroup(network, n, `schedule.minibatch[${key}]`);
  checkStddevGroup(network, schedule.minibatchBase, 'schedule.minibatchBase');
  return {
    data: o.data,
    network,
    schedule,
    loss: { ...base.loss, ...o.loss },
    adam: { ...base.adam, ...o.adam },
    ema: { ...base.ema, ...o.ema },
    mirror: o.mirror ?? base.mirror,
    seed: o.seed ?? 0,
    threads: o.threads ?? 0,
    device: o.device ?? DEVICE_DEFAULTS.device,
    cudaGraphs: o.cudaGraphs ?? DEVICE_DEFAULTS.cudaGraphs,
    deterministic: o.deterministic ?? DEVICE_DEFAULTS.deterministic,
  };
}

function checkStddevGroup(network: NetworkConfig, minibatch: number, name: string): void {
  const g = network.minibatchStddevGroup;
  if (g > 1 && minibatch > g && minibatch % g !== 0) {
    throw new TypeError(`Expected ${name} to be a multiple of the minibatch-stddev group size ${g} but received ${minibatch}`);
  }
}
