// Shared helpers of the GPU smoke checks (scripts/gpu-smoke): argument parsing, a synthetic
// dataset, relative errors, and the device the checks run on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatasetWriter } from '../../lib/dataset';
import { native } from '../../lib/native';
import { Tensor } from '../../lib/tensor';

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

export function numArg(name: string, fallback: number): number {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isFinite(v)) throw new RangeError(`--${name} must be a number`);
  return v;
}

/** 'cuda' when this addon is the CUDA build and libtorch sees a GPU; else 'cpu'. */
export function describeAddon(): { build: 'cpu' | 'cuda'; cuda: boolean; torch: string } {
  const a = native();
  const v = a.versions();
  return { build: v.build, cuda: v.build === 'cuda' && a.cudaAvailable(), torch: v.torch };
}

/** Deterministic PRNG (mulberry32) for uniform bytes and floats. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = r();
  return new Tensor(out, shape, 'float32');
}

/** A .pgds file of `count` random (smooth-ish) images at `resolution`, in a temp folder. */
export function syntheticDataset(resolution: number, count: number, channels: 1 | 3, seed: number, dir = tempDir()): string {
  const file = path.join(dir, `synthetic-${resolution}-c${channels}-n${count}.pgds`);
  if (fs.existsSync(file)) return file;
  const w = new DatasetWriter(file, { resolution, channels, source: 'synthetic (scripts/gpu)' });
  const r = rng(seed);
  const img = new Uint8Array(channels * resolution * resolution);
  for (let n = 0; n < count; n++) {
    // Random noise plus a random gradient, so lower pyramid levels are not flat.
    const gx = r() * 255, gy = r() * 255;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < resolution; y++) {
        for (let x = 0; x < resolution; x++) {
          const v = 0.5 * ((gx * x + gy * y) / resolution) + 0.5 * r() * 255;
          img[(c * resolution + y) * resolution + x] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
    w.append(img);
  }
  w.finish({ labelNames: [] });
  return file;
}

let tmp: string | undefined;
export function tempDir(): string {
  tmp ??= fs.mkdtempSync(path.join(process.env.PROGAN_SMOKE_TMP ?? os.tmpdir(), 'progan-gpu-'));
  return tmp;
}
export function removeTempDir(): void {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

// max|a − b| / max|b| (the absolute error against an all-zero reference): the tests' measure.
export { relativeError } from '../../test/helpers/compare';

/** |a − b| / max(|b|, floor): scalars near zero (the Wasserstein term) are judged on `floor`. */
export function scalarError(a: number, b: number, floor = 1e-3): number {
  return Number.isFinite(a) && Number.isFinite(b) ? Math.abs(a - b) / Math.max(Math.abs(b), floor) : Infinity;
}

export const fmt = (e: number) => (Number.isFinite(e) ? e.toExponential(2) : String(e));

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n');
}
