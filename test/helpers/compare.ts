// How the parity tests measure agreement between our tensors and a reference's.
import { Tensor } from '../../lib/tensor';

/**
 * Relative error of one tensor: max|ours − ref| / max(max|ref|, floor); the absolute error where
 * that denominator is 0 (an all-zero reference and no floor). A shape mismatch or a NaN anywhere
 * counts as Infinity, so it can never pass. The GPU parity script (scripts/gpu) uses it too.
 */
export function relativeError(ours: Tensor, ref: Tensor, floor = 0): number {
  if (ours.shape.join() !== ref.shape.join()) return Infinity;
  const a = ours.data as Float32Array | Float64Array;
  const b = ref.data as Float32Array | Float64Array;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    if (d > diff) diff = d;
    if (Math.abs(b[i]) > scale) scale = Math.abs(b[i]);
  }
  const denominator = Math.max(scale, floor);
  return denominator > 0 ? diff / denominator : diff;
}

/** A float64 copy of a float32 tensor (float64 tensors pass through), to compare against a float64 truth. */
export function toFloat64(t: Tensor): Tensor {
  return t.dtype === 'float64' ? t : new Tensor(Float64Array.from(t.data as Float32Array), t.shape, 'float64');
}

/** The first element of a (float64) tensor the reference reported as a scalar; NaN when missing. */
export const scalarOf = (t: Tensor | undefined): number => (t ? Number((t.data as Float64Array)[0]) : NaN);
