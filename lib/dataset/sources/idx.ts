/**
 * MNIST / Fashion-MNIST IDX files (`*-images-idx3-ubyte[.gz]` and `*-labels-idx1-ubyte[.gz]`),
 * prepared as the official ProGAN dataset_tool's create_mnist: 28×28 padded with zeros by 2 on
 * each side to 32×32, then (here) resized to R with lanczos3 when R ≠ 32.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { resizeRaw } from '../image';
import type { Source } from './source';

const IMAGES_MAGIC = 0x00000803; // unsigned bytes, 3 dimensions
const LABELS_MAGIC = 0x00000801; // unsigned bytes, 1 dimension

export function isIdxImages(file: string): boolean {
  return /images[-.]idx3[-.]ubyte(\.gz)?$/i.test(path.basename(file));
}

/** The file contents, gunzipped when it starts with the gzip signature (whatever its name). */
function readMaybeGzip(file: string): Buffer {
  const bytes = fs.readFileSync(file);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return zlib.gunzipSync(bytes);
    } catch (e) {
      throw new Error(`${file}: cannot gunzip (${(e as Error).message})`);
    }
  }
  return bytes;
}

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
}

export function parseIdxImages(file: string): IdxImages {
  const b = readMaybeGzip(file);
  if (b.length < 16) throw new Error(`${file}: not an IDX image file (only ${b.length} bytes)`);
  const magic = b.readUInt32BE(0);
  if (magic !== IMAGES_MAGIC) {
    throw new Error(`${file}: bad IDX magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803 (uint8 images, 3 dimensions)`);
  }
  const count = b.readUInt32BE(4);
  const rows = b.readUInt32BE(8);
  const cols = b.readUInt32BE(12);
  const want = 16 + count * rows * cols;
  if (b.length !== want) {
    throw new Error(`${file}: ${count} images of ${rows}×${cols} need ${want} bytes, the file has ${b.length}`);
  }
  if (rows === 0 || cols === 0) throw new Error(`${file}: empty images (${rows}×${cols})`);
  return { count, rows, cols, pixels: new Uint8Array(b.buffer, b.byteOffset + 16, count * rows * cols) };
}

export function parseIdxLabels(file: string): Uint8Array {
  const b = readMaybeGzip(file);
  if (b.length < 8) throw new Error(`${file}: not an IDX label file (only ${b.length} bytes)`);
  const magic = b.readUInt32BE(0);
  if (magic !== LABELS_MAGIC) {
    throw new Error(`${file}: bad IDX magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000801 (uint8 labels, 1 dimension)`);
  }
  const count = b.readUInt32BE(4);
  if (b.length !== 8 + count) throw new Error(`${file}: ${count} labels need ${8 + count} bytes, the file has ${b.length}`);
  return new Uint8Array(b.buffer, b.byteOffset + 8, count);
}

/** The label file beside an image file: train-images-idx3-ubyte.gz → train-labels-idx1-ubyte[.gz]. */
function findLabelFile(imagesFile: string): string | undefined {
  const dir = path.dirname(imagesFile);
  const base = path.basename(imagesFile).replace(/images([-.])idx3([-.])ubyte(\.gz)?$/i, 'labels$1idx1$2ubyte');
  return [base, `${base}.gz`].map((b) => path.join(dir, b)).find((f) => fs.existsSync(f));
}

export function idxSource(file: string, resolution: number, channels: 1 | 3, labelsFile: string | undefined): Source {
  const images = parseIdxImages(file);
  const labelPath = labelsFile ?? findLabelFile(file);
  let labels: Uint8Array | undefined;
  if (labelPath) {
    labels = parseIdxLabels(labelPath);
    if (labels.length !== images.count) {
      throw new Error(`${labelPath} has ${labels.length} labels but ${file} has ${images.count} images`);
    }
    const bad = labels.findIndex((l) => l > 9);
    if (bad >= 0) throw new Error(`${labelPath}: label ${labels[bad]} of image ${bad} is not a digit class 0..9`);
  }
    // The official tool pads 28 → 32; other sizes go to the next power of two the same way.
  const { rows, cols, pixels } = images;
  let padded = 4;
  while (padded < Math.max(rows, cols)) padded *= 2;
  const top = (padded - rows) >> 1;
  const left = (padded - cols) >> 1;
  const digits = String(images.count - 1).length;
  return {
    description: `idx ${path.resolve(file)}${labelPath ? ` with labels ${path.resolve(labelPath)}` : ''}`,
    items: Array.from({ length: images.count }, (_, i) => ({
      name: `${path.basename(file)}#${String(i).padStart(digits, '0')}`,
      label: labels ? labels[i] : null,
    })),
    labelNames: labels ? ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] : [],
    ignored: 0,
    async load(i) {
      const square = new Uint8Array(padded * padded);
      const src = i * rows * cols;
      for (let y = 0; y < rows; y++) {
        square.set(pixels.subarray(src + y * cols, src + (y + 1) * cols), (top + y) * padded + left);
      }
      const gray = await resizeRaw(square, 1, padded, resolution);
      if (channels === 1) return gray;
      const rgb = new Uint8Array(3 * gray.length);
      for (let c = 0; c < 3; c++) rgb.set(gray, c * gray.length);
      return rgb;
    },
  };
}
