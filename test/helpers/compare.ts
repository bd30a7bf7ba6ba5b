// How the parity tests measure agreement between our tensors and a reference's.
import type { Tensor } from '../../lib/tensor';

/**
 * Relative error of one tensor: max|ours − ref| / max(max|ref|, floor). A shape mismatch or a NaN
 * anywhere counts as Infinity, so it can never pass.
 */
export function relativeError(ours: Tensor, ref: Tensor, floor: number): number {
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
  return diff / Math.max(scale, floor);
}
