// Network options: one validated object, defaults from the paper (PAPER.md), sent to C++ as is.
import { z } from 'zod';

export const PRESETS = {
  /** The paper's networks (Table 2): 23.1 M parameters each at 1024². */
  paper: { resolution: 1024, fmapBase: 8192, fmapMax: 512, latentSize: 512 },
  /** The official CIFAR-10 configuration. */
  cifar: { resolution: 32, fmapBase: 4096, fmapMax: 128, latentSize: 128 },
  /** Narrow networks that show real progress on a few CPU cores in minutes. */
  small: { resolution: 64, fmapBase: 1024, fmapMax: 128, latentSize: 128 },
} as const;
export type PresetName = keyof typeof PRESETS;

const powerOfTwo = (name: string) =>
  z.number().refine((v) => Number.isInteger(v) && v >= 4 && v <= 1024 && (v & (v - 1)) === 0, {
    error: (issue) => `Expected a power of two from 4 to 1024 for ${name} but received ${String(issue.input)}`,
  });
const positiveInt = (name: string, max = 1 << 20) =>
  z.number().refine((v) => Number.isInteger(v) && v >= 1 && v <= max, {
    error: (issue) => `Expected an integer from 1 to ${max} for ${name} but received ${String(issue.input)}`,
  });

export const networkOptionsSchema = z
  .object({
    preset: z.enum(['paper', 'cifar', 'small']).default('paper'),
    resolution: powerOfTwo('resolution').optional(),
    latentSize: positiveInt('latentSize', 8192).optional(),
    fmapBase: positiveInt('fmapBase').optional(),
    fmapDecay: z.number().refine((v) => Number.isFinite(v) && v >= 0 && v <= 4, {
      error: (i) => `Expected a number from 0 to 4 for fmapDecay but received ${String(i.input)}`,
    }).default(1),
    fmapMax: positiveInt('fmapMax', 8192).optional(),
    channels: z.union([z.literal(1), z.literal(3)], {
      error: (i) => `Expected 1 or 3 for channels but received ${String(i.input)}`,
    }).default(3),
    labelSize: z.number().refine((v) => Number.isInteger(v) && v >= 0 && v <= 4096, {
      error: (i) => `Expected an integer from 0 to 4096 for labelSize but received ${String(i.input)}`,
    }).default(0),
    outputActivation: z.enum(['linear', 'tanh']).default('linear'),
    minibatchStddevGroup: z.number().refine((v) => Number.isInteger(v) && v >= 0 && v <= 64, {
      error: (i) => `Expected an integer from 0 to 64 for minibatchStddevGroup (0 or 1 disables it) but received ${String(i.input)}`,
    }).default(4),
    normalizeLatents: z.boolean().default(true),
    pixelNormEpsilon: z.number().positive().default(1e-8),
    /**
     * Fused-scale up/down convolutions: the same function with fewer FLOPs. 'auto' fuses from 8² up,
     * except the CPU's layers whose 3×3 convolution runs as Winograd (as many multiply-adds, measured
     * faster): float32 layers of 256+ channels, or 128+ at 8².
     */
    fusedScale: z.union([z.literal('auto'), z.boolean()], {
      error: (i) => `Expected 'auto', true or false for fusedScale but received ${String(i.input)}`,
    }).default('auto'),
    /**
     * Winograd F(2×2, 3×3) for the CPU's unfused 3×3 convolutions: the same function with 2.25× fewer
     * multiply-adds. 'auto' takes it for float32 layers of 128+ input and output channels (the paper
     * preset's 4²–128² blocks, the small preset's 4²–16²), where it measured faster; true wherever it
     * applies (CPU, float32/float64).
     */
    winograd: z.union([z.literal('auto'), z.boolean()], {
      error: (i) => `Expected 'auto', true or false for winograd but received ${String(i.input)}`,
    }).default('auto'),
    /**
     * Convolutions in channels-last (NHWC) memory layout: the same function, in the layout cuDNN's
     * tensor-core kernels want (NCHW makes cuDNN transpose around every call). 'auto' takes it on
     * CUDA only, where it ran 1.11–1.17× faster at 16²–128² (H100, paper channels). On the CPU,
     * oneDNN's small-preset steps were within noise of NCHW from 8² up and 9–16 % slower at 4².
     */
    channelsLast: z.union([z.literal('auto'), z.boolean()], {
      error: (i) => `Expected 'auto', true or false for channelsLast but received ${String(i.input)}`,
    }).default('auto'),
    /**
     * Fused fade-in, gradient-penalty, pixel-norm and (on CUDA) bias + leaky ReLU kernels, minibatch
     * stddev's closed-form derivatives and, on the CPU, the 1×1 convolutions (toRGB, fromRGB) as loops
     * and matrix products ('auto'), or their ATen references ('reference').
     */
    impl: z.enum(['auto', 'reference']).default('auto'),
    /**
     * How the 3×3 convolutions' weight gradients are computed: 'library', the convolution library's own
     * kernel (cuDNN, oneDNN); 'gemm', nine matrix products over the zero-padded channels-last
     * activations, one per kernel tap, whose long sums cuBLAS splits across the GPU (cuDNN's persistent
     * 3×3 weight-gradient kernel ran at half its forward's rate on an H100, 512 channels at 32²).
     * The same function. 'auto' is 'library' until 'gemm' is measured faster on a GPU; on the CPU
     * 'gemm' is correct but slower than oneDNN (small-preset 16² steps 250–290 against 166–200 ms).
     */
    weightGradient: z.enum(['auto', 'library', 'gemm'], {
      error: (i) => `Expected 'auto', 'library' or 'gemm' for weightGradient but received ${String(i.input)}`,
    }).default('auto'),
    /**
     * 'bfloat16': convolutions and dense layers multiply in bfloat16 (float32 master weights, float32
     * accumulation); biases, activations, pixel norm, minibatch stddev, fade-ins, losses, the gradient
     * penalty, Adam and the EMA stay float32. Faster on GPUs and on CPUs with AVX512-BF16 or AMX.
     */
    precision: z.enum(['float32', 'bfloat16'], {
      error: (i) => `Expected 'float32' or 'bfloat16' for precision but received ${String(i.input)}`,
    }).default('float32'),
  })
  .strict();

export type NetworkOptionsInput = z.input<typeof networkOptionsSchema>;

/** Every field resolved: what C++ receives and what checkpoints record. */
export interface NetworkConfig {
  preset: PresetName;
  resolution: number;
  latentSize: number;
  fmapBase: number;
  fmapDecay: number;
  fmapMax: number;
  channels: 1 | 3;
  labelSize: number;
  outputActivation: 'linear' | 'tanh';
  minibatchStddevGroup: number;
  normalizeLatents: boolean;
  pixelNormEpsilon: number;
  fusedScale: 'auto' | boolean;
  winograd: 'auto' | boolean;
  channelsLast: 'auto' | boolean;
  impl: 'auto' | 'reference';
  weightGradient: 'auto' | 'library' | 'gemm';
  precision: 'float32' | 'bfloat16';
}

export function resolveNetworkOptions(input: NetworkOptionsInput = {}): NetworkConfig {
  const o = parseOrThrow(networkOptionsSchema, input, 'network options');
  const preset = PRESETS[o.preset];
  return {
    preset: o.preset,
    resolution: o.resolution ?? preset.resolution,
    latentSize: o.latentSize ?? preset.latentSize,
    fmapBase: o.fmapBase ?? preset.fmapBase,
    fmapDecay: o.fmapDecay,
    fmapMax: o.fmapMax ?? preset.fmapMax,
    channels: o.channels,
    labelSize: o.labelSize,
    outputActivation: o.outputActivation,
    minibatchStddevGroup: o.minibatchStddevGroup,
    normalizeLatents: o.normalizeLatents,
    pixelNormEpsilon: o.pixelNormEpsilon,
    fusedScale: o.fusedScale,
    winograd: o.winograd,
    channelsLast: o.channelsLast,
    impl: o.impl,
    weightGradient: o.weightGradient,
    precision: o.precision,
  };
}

/** The official nf(): feature maps at a network stage. */
export function featureMaps(config: Pick<NetworkConfig, 'fmapBase' | 'fmapDecay' | 'fmapMax'>, stage: number): number {
  return Math.min(Math.floor(config.fmapBase / 2 ** (stage * config.fmapDecay)), config.fmapMax);
}

/** Throws unless `resolution` is a power of two from 4 to `final` (a network runs at any of them). */
export function checkResolution(resolution: number, final: number): void {
  if (!Number.isInteger(resolution) || resolution < 4 || resolution > final || (resolution & (resolution - 1)) !== 0) {
    throw new RangeError(`Expected a power of two from 4 to ${final} for resolution but received ${resolution}`);
  }
}

/** Throws unless `alpha`, the weight of the newest block during a fade-in, is a number in [0, 1]. */
export function checkAlpha(alpha: number): void {
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1)) {
    throw new RangeError(`Expected a number in [0, 1] for alpha but received ${alpha}`);
  }
}

/** Resolutions from 4 up to the final one. */
export function resolutionsUpTo(resolution: number): number[] {
  const out: number[] = [];
  for (let r = 4; r <= resolution; r *= 2) out.push(r);
  return out;
}

/** zod's parse with one readable message: every problem on its own line, naming the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : what;
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => [...issue.path, k].join('.'));
      return `Unknown option${keys.length > 1 ? 's' : ''} in ${what}: ${keys.join(', ')}`;
    }
    if (issue.message.startsWith('Expected')) return issue.message;
    // The offending value, found by the issue's path in the input (zod leaves it out of the issue).
    const value = issue.path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), input);
    const shown = typeof value === 'number' || typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
    const received = value !== undefined ? ` but received ${shown}` : '';
    // zod's "expected boolean, received string" gives way to the value itself.
    const message = received ? issue.message.replace(/, received \w+$/, '') : issue.message;
    return `Invalid value for ${where}: ${message}${received}`;
  });
  throw new TypeError(`Invalid ${what}:\n  ${lines.join('\n  ')}`);
}
