/**
 * Sample images: float NCHW tensors in [-1, 1] → uint8 HWC, PNG grids and animated time-lapses.
 *
 * The uint8 mapping is the official ProGAN `convert_images_to_uint8` with drange [-1, 1]:
 * x → clamp(round((x + 1) · 127.5), 0, 255), rounding halves up.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Tensor } from './tensor';

/** One image, row-major height × width × channels. */
export interface Uint8Image {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

export interface GridOptions {
  /** Cells per row; default ceil(sqrt(N)). */
  columns?: number;
  /** Nearest-neighbour resize of every cell to size × size (e.g. the final resolution). */
  size?: number;
  /** Black pixels between neighbouring cells (not around the border); default 0. */
  padding?: number;
}

export interface TimelapseOptions {
  /** Display time of every frame but the last, in ms; default 120. */
  delayMs?: number;
  /** Display time of the last frame, in ms; default 1500. */
  lastDelayMs?: number;
}

interface Dims {
  n: number;
  c: 1 | 3;
  h: number;
  w: number;
}

function checkImages(images: Tensor, name: string): Dims {
  if (!(images instanceof Tensor)) throw new TypeError(`Expected a Tensor for ${name}`);
  const s = images.shape;
  if (s.length !== 4 || (s[1] !== 1 && s[1] !== 3) || s[0] < 1 || s[2] < 1 || s[3] < 1) {
    throw new RangeError(`Expected ${name} of shape [N, 1|3, H, W] but received [${s.join(', ')}]`);
  }
  if (images.dtype !== 'float32' && images.dtype !== 'float64') {
    throw new TypeError(`Expected float32 ${name} in [-1, 1] but received ${images.dtype}`);
  }
  return { n: s[0], c: s[1] as 1 | 3, h: s[2], w: s[3] };
}

/** x ∈ [-1, 1] → 0..255 (round half up, clamped; NaN → 0). */
function toByte(x: number): number {
  const v = Math.floor((x + 1) * 127.5 + 0.5);
  return v >= 255 ? 255 : v > 0 ? v : 0; // NaN fails both comparisons → 0
}

/** Converts float [N, C, H, W] in [-1, 1] to one uint8 HWC image per sample. */
export function toUint8Image(images: Tensor): Uint8Image[] {
  const { n, c, h, w } = checkImages(images, 'images');
  const src = images.data as Float32Array | Float64Array;
  const plane = h * w;
  const out: Uint8Image[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(plane * c);
    const base = i * c * plane;
    for (let ch = 0; ch < c; ch++) {
      const off = base + ch * plane;
      for (let p = 0; p < plane; p++) data[p * c + ch] = toByte(src[off + p]);
    }
    out.push({ width: w, height: h, channels: c, data });
  }
  return out;
}

function positiveInt(value: number | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Expected ${name} to be an integer >= ${min} but received ${value}`);
  }
  return value;
}

/** Lays the images out in a grid (row-major, empty trailing cells black) and encodes it as PNG. */
export async function imageGrid(images: Tensor, options: GridOptions = {}): Promise<Buffer> {
  const { n, c, h, w } = checkImages(images, 'images');
  const columns = positiveInt(options.columns, 'columns', Math.ceil(Math.sqrt(n)));
  const cellH = positiveInt(options.size, 'size', h);
  const cellW = positiveInt(options.size, 'size', w);
  const padding = positiveInt(options.padding, 'padding', 0, 0);
  const cols = Math.min(columns, n);
  const rows = Math.ceil(n / cols);
  const width = cols * cellW + (cols - 1) * padding;
  const height = rows * cellH + (rows - 1) * padding;
  const grid = Buffer.alloc(width * height * c);
  // Nearest neighbour: destination pixel d samples source floor(d · src / dst).
  const mapY = Int32Array.from({ length: cellH }, (_, y) => Math.floor((y * h) / cellH));
  const mapX = Int32Array.from({ length: cellW }, (_, x) => Math.floor((x * w) / cellW));
  toUint8Image(images).forEach((img, i) => {
    const x0 = (i % cols) * (cellW + padding);
    const y0 = Math.floor(i / cols) * (cellH + padding);
    for (let y = 0; y < cellH; y++) {
      const srcRow = mapY[y] * w;
      let dst = ((y0 + y) * width + x0) * c;
      for (let x = 0; x < cellW; x++) {
        const src = (srcRow + mapX[x]) * c;
        for (let ch = 0; ch < c; ch++) grid[dst++] = img.data[src + ch];
      }
    }
  });
  const img = sharp(grid, { raw: { width, height, channels: c } });
  // sharp 0.35 writes a 1-channel raw input as an RGB PNG unless told to keep it grayscale.
  return (c === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

/**
 * Joins same-sized PNG frames into an animated WebP (`.webp`) or GIF (`.gif`), looping forever, and
 * writes it atomically (temporary file in the same folder, then rename).
 */
export async function writeTimelapse(frames: Buffer[], file: string, options: TimelapseOptions = {}): Promise<void> {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.webp' && ext !== '.gif') {
    throw new RangeError(`Expected a time-lapse file ending in .webp or .gif but received ${file}`);
  }
  if (!Array.isArray(frames) || frames.length === 0) throw new RangeError('Expected at least one frame');
  const delayMs = checkDelay(options.delayMs, 'delayMs', 120);
  const lastDelayMs = checkDelay(options.lastDelayMs, 'lastDelayMs', 1500);

  let first: { width: number; height: number } | undefined;
  const inputs = frames.slice();
  for (let i = 0; i < frames.length; i++) {
    if (!Buffer.isBuffer(frames[i])) throw new TypeError(`Expected frame ${i} to be a Buffer holding a PNG`);
    const meta = await sharp(frames[i]).metadata();
    // sharp 0.35's GIF encoder merged 1-channel frames 0 and 127 into one page (interPaletteMaxError 0
    // did not help; the same frames as RGB were kept apart): hand it RGB.
    if (ext === '.gif' && (meta.channels ?? 3) < 3) inputs[i] = await sharp(frames[i]).toColourspace('srgb').png().toBuffer();
    if (!first) {
      first = { width: meta.width, height: meta.height };
    } else if (meta.width !== first.width || meta.height !== first.height) {
      throw new RangeError(
        `Expected every frame to be ${first.width}x${first.height} like frame 0 but frame ${i} is ${meta.width}x${meta.height}`,
      );
    }
  }

  const delay = frames.map((_, i) => (i === frames.length - 1 ? lastDelayMs : delayMs));
  const joined = sharp(inputs, { join: { animated: true } });
  // GIF: the encoder still merges a frame identical to the previous one into it (summing the delays,
  // so the duration is kept); the error limits at 0 stop it from also merging merely similar frames.
  const encoded = await (
    ext === '.webp'
      ? joined.webp({ loop: 0, delay })
      : joined.gif({ loop: 0, delay, interFrameMaxError: 0, interPaletteMaxError: 0 })
  ).toBuffer();

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await fs.promises.writeFile(tmp, encoded);
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

function checkDelay(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0 || value > 65535) {
    throw new RangeError(`Expected ${name} to be an integer from 0 to 65535 ms but received ${value}`);
  }
  return value;
}
