/**
 * The resolution pyramid of one image, bit-identical to the official ProGAN dataset_tool.py:
 * each level is the 2×2 box mean of the previous *float32* level (not of the rounded one),
 * and every level is quantised with numpy's `np.rint(img).clip(0, 255).astype(np.uint8)`.
 */

/** Resolutions stored for a final resolution R: R, R/2, …, 4. */
export function levelResolutions(resolution: number): number[] {
  const out: number[] = [];
  for (let r = resolution; r >= 4; r >>= 1) out.push(r);
  return out;
}

/** np.rint: round half to even. Ties are common here since levels are multiples of 1/4. */
export function rintHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for float32 inputs of this magnitude
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function quantise(src: Float32Array, dst: Uint8Array): void {
  for (let i = 0; i < src.length; i++) {
    const v = rintHalfEven(src[i]);
    dst[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
}

/**
 * One 2×2 box-filter step on a CHW float32 image. Math.fround after every operation reproduces
 * numpy's float32 evaluation order ((a + b) + c) + d, then * 0.25; from 256² down the sums
 * have more fractional bits than float32 holds, so the order matters.
 */
export function downsample(src: Float32Array, channels: number, size: number): Float32Array {
  const half = size >> 1;
  const dst = new Float32Array(channels * half * half);
  const fr = Math.fround;
  for (let c = 0; c < channels; c++) {
    const s = c * size * size;
    const d = c * half * half;
    for (let y = 0; y < half; y++) {
      const row0 = s + 2 * y * size;
      const row1 = row0 + size;
      for (let x = 0; x < half; x++) {
        const a = src[row0 + 2 * x];
        const b = src[row0 + 2 * x + 1];
        const e = src[row1 + 2 * x];
        const f = src[row1 + 2 * x + 1];
        dst[d + y * half + x] = fr(fr(fr(fr(a + b) + e) + f) * 0.25);
      }
    }
  }
  return dst;
}

/**
 * All levels of one CHW uint8 image of `size`×`size`, from `size` down to 4.
 * The first entry is the input itself.
 */
export function buildPyramid(image: Uint8Array, channels: number, size: number): Uint8Array[] {
  if (image.length !== channels * size * size) {
    throw new Error(`buildPyramid: expected ${channels}×${size}×${size} bytes but received ${image.length}`);
  }
  const levels: Uint8Array[] = [image];
  let current: Float32Array = Float32Array.from(image);
  for (let r = size; r > 4; r >>= 1) {
    current = downsample(current, channels, r);
    const q = new Uint8Array(current.length);
    quantise(current, q);
    levels.push(q);
  }
  return levels;
}
