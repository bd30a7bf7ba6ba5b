// A plain CPU tensor: a shape, a dtype and a typed array. Crossing to C++ copies the data
// exactly once in each direction (binding/js_interop.cpp).
import { native } from './native';

export type DType = 'float32' | 'float64' | 'uint8' | 'int32' | 'int64';

export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'uint8'
      ? Uint8Array
      : D extends 'int32'
        ? Int32Array
        : BigInt64Array;

type AnyTypedArray = Float32Array | Float64Array | Uint8Array | Int32Array | BigInt64Array;

const ARRAY_DTYPE = new Map<Function, DType>([
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [Uint8Array, 'uint8'],
  [Int32Array, 'int32'],
  [BigInt64Array, 'int64'],
]);

export class Tensor<D extends DType = DType> {
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly data: TypedArrayOf<D>;

  constructor(data: TypedArrayOf<D>, shape: readonly number[], dtype: D) {
    this.shape = Object.freeze(checkShape(shape, 'shape'));
    this.dtype = dtype;
    this.data = data;
    const expected = numel(this.shape);
    if (data.length !== expected) {
      throw new RangeError(
        `Expected ${expected} elements for a tensor of shape [${this.shape.join(', ')}] but received ${data.length}`,
      );
    }
  }

  get size(): number {
    return this.data.length;
  }

  toFloat32Array(): Float32Array {
    if (this.data instanceof Float32Array) return this.data.slice();
    if (this.data instanceof BigInt64Array) return Float32Array.from(this.data, (v) => Number(v));
    return Float32Array.from(this.data as ArrayLike<number>);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }
}

/** Builds a tensor from a typed array (dtype from its type) or a plain number array (float32). */
export function tensor(data: AnyTypedArray | readonly number[], shape: readonly number[], name = 'data'): Tensor {
  if (Array.isArray(data)) {
    const values = data as readonly number[];
    values.forEach((v, i) => {
      if (typeof v !== 'number') throw new TypeError(`Expected numbers in ${name} but element ${i} is ${typeof v}`);
    });
    return new Tensor(Float32Array.from(values), shape, 'float32');
  }
  const dtype = ARRAY_DTYPE.get((data as AnyTypedArray).constructor);
  if (!dtype) throw new TypeError(`Expected a number array or a typed array for ${name}`);
  return new Tensor(data as TypedArrayOf<typeof dtype>, shape, dtype);
}

/** Standard normal samples from libtorch's CPU generator: the same seed gives the same values. */
export function randn(shape: readonly number[], options: { seed?: number; dtype?: 'float32' | 'float64' } = {}): Tensor {
  const dims = checkShape(shape, 'shape');
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected a non-negative integer for seed but received ${seed}`);
  return fromNative(native().randn(dims, seed, options.dtype ?? 'float32'));
}

/** Throws when a float tensor holds NaN or ±Infinity, naming the argument. */
export function assertFinite(t: Tensor, name: string): void {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') return;
  const data = t.data as Float32Array | Float64Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new RangeError(`Expected finite values in ${name} but element ${i} is ${data[i]}`);
    }
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(shape: readonly number[], name: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`Expected an array of dimensions for ${name}`);
  return shape.map((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`Expected non-negative integer dimensions for ${name} but dimension ${i} is ${d}`);
    }
    return d;
  });
}

/** The wire form the native side reads and writes. */
export interface NativeTensor {
  dtype: DType;
  shape: number[];
  data: AnyTypedArray;
}

export function fromNative(t: NativeTensor): Tensor {
  return new Tensor(t.data as TypedArrayOf<DType>, t.shape, t.dtype);
}

export function toNative(t: Tensor, name: string): NativeTensor {
  if (!(t instanceof Tensor)) throw new TypeError(`Expected a Tensor for ${name}; build one with tensor(data, shape)`);
  return { dtype: t.dtype, shape: [...t.shape], data: t.data };
}
