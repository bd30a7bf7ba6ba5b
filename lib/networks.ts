// The generator and discriminator as typed JS objects over one native pair. Inputs are checked
// here, with messages that name the argument, before anything reaches C++.
import { native, type NativeNetworks, type NetworkName, type NamedNativeTensors } from './native';
import { checkAlpha, checkResolution, resolveNetworkOptions, type NetworkConfig, type NetworkOptionsInput } from './options';
import { readSafetensors, writeSafetensors, type NamedTensors } from './safetensors';
import { Tensor, assertFinite, fromNative, toNative } from './tensor';

export interface ForwardOptions {
  /** Resolution to compute at (a power of two up to the final one); defaults to the final one. */
  resolution?: number;
  /** Weight of the newest block during a fade-in, in [0, 1]; 1 (default) means fully faded in. */
  alpha?: number;
  /** Class labels, one-hot or soft, [N, labelSize]; conditional generators only. */
  labels?: Tensor;
}

export interface Gradients {
  output: Tensor;
  inputGrad: Tensor;
  gradients: NamedTensors;
}

export interface CreateNetworksOptions extends NetworkOptionsInput {
  /** Seed for the weight initialisation (N(0, 1) weights, zero biases). */
  seed?: number;
}

export class Network {
  /** @internal */
  constructor(
    private readonly pair: NativeNetworks,
    readonly name: NetworkName,
    readonly config: NetworkConfig,
    private readonly dtype: () => 'float32' | 'float64',
  ) {}

  forward(input: Tensor, options: ForwardOptions = {}): Tensor {
    const { resolution, alpha, labels } = this.check(input, options);
    return fromNative(this.pair.forward(this.name, toNative(input, 'input'), resolution, alpha, labels));
  }

  /** Forward, then backward from `gradOutput`: the output, the input's gradient and every parameter's. */
  forwardBackward(input: Tensor, gradOutput: Tensor, options: ForwardOptions = {}): Gradients {
    const { resolution, alpha, labels } = this.check(input, options);
    const r = this.pair.forwardBackward(this.name, toNative(input, 'input'), resolution, alpha, labels, toNative(gradOutput, 'gradOutput'));
    return { output: fromNative(r.output), inputGrad: fromNative(r.inputGrad), gradients: namedFromNative(r.gradients) };
  }

  get parameterCount(): number {
    return this.pair.parameterCount(this.name);
  }

  /** Every trainable tensor by name (copies). */
  parameters(): NamedTensors {
    return namedFromNative(this.pair.parameters(this.name));
  }

  /** Replaces every parameter; names and shapes must match this architecture exactly. */
  setParameters(values: NamedTensors): void {
    const list: NamedNativeTensors = [...values].map(([k, t]) => [k, toNative(t, k)]);
    this.pair.setParameters(this.name, list);
  }

  saveWeights(file: string): void {
    writeSafetensors(file, this.parameters(), {
      format: 'progan-weights',
      network: this.name,
      config: JSON.stringify(this.config),
    });
  }

  loadWeights(file: string): void {
    const { tensors, metadata } = readSafetensors(file);
    if (metadata.network && metadata.network !== this.name) {
      throw new Error(`${file} holds ${metadata.network} weights, not ${this.name} weights`);
    }
    try {
      this.setParameters(tensors);
    } catch (e) {
      throw new Error(`Cannot load ${file} into this ${this.name}: ${(e as Error).message}`);
    }
  }

  private check(input: Tensor, options: ForwardOptions): { resolution: number; alpha: number; labels: ReturnType<typeof toNative> | null } {
    const c = this.config;
    const resolution = options.resolution ?? c.resolution;
    const alpha = options.alpha ?? 1;
    checkResolution(resolution, c.resolution);
    checkAlpha(alpha);
    if (!(input instanceof Tensor)) throw new TypeError(`Expected a Tensor for the ${this.name} input`);
    if (input.dtype !== this.dtype()) {
      throw new TypeError(`Expected a ${this.dtype()} tensor for the ${this.name} input but received ${input.dtype}`);
    }
    const n = input.shape[0];
    if (this.name === 'generator') {
      if (input.shape.length !== 2 || input.shape[1] !== c.latentSize) {
        throw new RangeError(`Expected latents of shape [N, ${c.latentSize}] but received [${input.shape.join(', ')}]`);
      }
      assertFinite(input, 'latents');
    } else {
      const want = [c.channels, resolution, resolution];
      if (input.shape.length !== 4 || want.some((d, i) => input.shape[i + 1] !== d)) {
        throw new RangeError(
          `Expected images of shape [N, ${want.join(', ')}] at resolution ${resolution} but received [${input.shape.join(', ')}]` +
            (input.shape[1] !== c.channels ? ` (this discriminator takes ${c.channels}-channel images)` : ''),
        );
      }
      assertFinite(input, 'images');
      const group = Math.min(c.minibatchStddevGroup, n);
      if (c.minibatchStddevGroup > 1 && n % group !== 0) {
        throw new RangeError(
          `Expected a batch size divisible by the minibatch-stddev group size ${c.minibatchStddevGroup} (or smaller than it) but received ${n}`,
        );
      }
    }
    if (n < 1) throw new RangeError(`Expected at least one sample in the ${this.name} input`);
    let labels = null;
    if (options.labels !== undefined) {
      if (this.name !== 'generator') throw new TypeError('labels are an input of the generator only');
      if (c.labelSize === 0) throw new TypeError('labels were given to an unconditional generator (labelSize 0)');
      const l = options.labels;
      if (l.shape.length !== 2 || l.shape[0] !== n || l.shape[1] !== c.labelSize) {
        throw new RangeError(`Expected labels of shape [${n}, ${c.labelSize}] but received [${l.shape.join(', ')}]`);
      }
      labels = toNative(l, 'labels');
    } else if (this.name === 'generator' && c.labelSize > 0) {
      throw new TypeError(`This generator is conditional: pass labels of shape [${n}, ${c.labelSize}]`);
    }
    return { resolution, alpha, labels };
  }
}

export class Networks {
  readonly generator: Network;
  readonly discriminator: Network;
  private dtypeValue: 'float32' | 'float64' = 'float32';

  private constructor(readonly config: NetworkConfig, seed: number) {
    const pair = new (native().Networks)(config, seed);
    const dtype = () => this.dtypeValue;
    this.generator = new Network(pair, 'generator', config, dtype);
    this.discriminator = new Network(pair, 'discriminator', config, dtype);
    this.pair = pair;
  }
  private readonly pair: NativeNetworks;

  static create(options: CreateNetworksOptions = {}): Networks {
    const { seed = 0, ...rest } = options;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected a non-negative integer for seed but received ${seed}`);
    return new Networks(resolveNetworkOptions(rest), seed);
  }

  get dtype(): 'float32' | 'float64' {
    return this.dtypeValue;
  }

  /** Converts both networks' parameters (float64 is for exactness tests). */
  setDtype(dtype: 'float32' | 'float64'): void {
    if (dtype !== 'float32' && dtype !== 'float64') throw new TypeError(`Expected float32 or float64 for dtype but received ${dtype}`);
    this.pair.setDtype(dtype);
    this.dtypeValue = dtype;
  }
}

export function createNetworks(options: CreateNetworksOptions = {}): Networks {
  return Networks.create(options);
}

function namedFromNative(list: NamedNativeTensors): NamedTensors {
  return new Map(list.map(([k, t]) => [k, fromNative(t)]));
}
