import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Tensor } from '../lib/tensor';
import { imageGrid, toUint8Image, writeTimelapse } from '../lib/images';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-images-'));
  tempDirs.push(dir);
  return dir;
}
test.after.always(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Deterministic uniform values in [lo, hi). */
function uniform(n: number, seed: number, lo = -1.3, hi = 1.3): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  }
  return out;
}

/** The reference mapping, written independently: numpy's clip(x·127.5 + 128, 0, 255).astype(uint8). */
function expectedByte(x: number): number {
  const v = Math.fround(x) * 127.5 + 127.5 + 0.5;
  return Math.trunc(Math.min(255, Math.max(0, v)));
}

test('toUint8Image maps [-1, 1] to 0..255 with rounding and clamping', (t) => {
  const values = [-2, -1, -0.9999, 0, 1 / 255, 0.5, 1, 3, NaN, -Infinity, Infinity];
  const out = toUint8Image(new Tensor(Float32Array.from(values), [1, 1, 1, values.length], 'float32'));
  const got = [...out[0].data];
  t.log(`mapped [${values.join(", ")}] → ${JSON.stringify(got)}`);
  t.deepEqual(got, [0, 0, 0, 128, 128, 191, 255, 255, 0, 0, 255]);
  t.deepEqual({ w: out[0].width, h: out[0].height, c: out[0].channels }, { w: values.length, h: 1, c: 1 });
  // HWC order for RGB: pixel (0,0) = channels 0,1,2 of the first spatial position.
  const rgb = toUint8Image(new Tensor(Float32Array.from([-1, 0, 1, 1, 0, -1]), [1, 3, 1, 2], 'float32'))[0];
  // planes R = [-1, 0], G = [1, 1], B = [0, -1] → pixels (0, 255, 128), (128, 255, 0)
  t.deepEqual([...rgb.data], [0, 255, 128, 128, 255, 0]);
});

test('imageGrid of 6 RGB images decodes to the exact mapped, nearest-upscaled pixels', async (t) => {
  const [N, C, H, W, size, padding, columns] = [6, 3, 8, 8, 32, 2, 4];
  const data = uniform(N * C * H * W, 1234); // includes values outside [-1, 1]
  const outside = data.filter((x) => x < -1 || x > 1).length;
  const png = await imageGrid(new Tensor(data, [N, C, H, W], 'float32'), { columns, size, padding });
  const { data: pixels, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const rows = Math.ceil(N / columns);
  t.log(`grid ${info.width}x${info.height}x${info.channels}, ${png.length} PNG bytes, ${outside} of ${data.length} inputs outside [-1, 1]`);
  t.is(info.width, columns * size + (columns - 1) * padding);
  t.is(info.height, rows * size + (rows - 1) * padding);
  t.is(info.channels, 3);
  const scale = size / H;
  let mismatches = 0;
  let checked = 0;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const col = Math.floor(x / (size + padding));
      const row = Math.floor(y / (size + padding));
      const cx = x - col * (size + padding);
      const cy = y - row * (size + padding);
      const i = row * columns + col;
      for (let ch = 0; ch < C; ch++) {
        let want = 0; // padding and empty cells are black
        if (cx < size && cy < size && i < N) {
          const sy = Math.floor(cy / scale);
          const sx = Math.floor(cx / scale);
          want = expectedByte(data[((i * C + ch) * H + sy) * W + sx]);
        }
        checked++;
        if (pixels[(y * info.width + x) * 3 + ch] !== want) mismatches++;
      }
    }
  }
  t.log(`checked ${checked} channel values, ${mismatches} mismatches`);
  t.is(mismatches, 0);
});

test('imageGrid defaults: ceil(sqrt(N)) columns, no upscale, no padding', async (t) => {
  const png = await imageGrid(new Tensor(uniform(5 * 3 * 4 * 4, 9), [5, 3, 4, 4], 'float32'));
  const meta = await sharp(png).metadata();
  t.log(`5 images of 4x4 → ${meta.width}x${meta.height}`);
  t.deepEqual([meta.width, meta.height], [3 * 4, 2 * 4]);
});

test('grayscale grid stays a 1-channel PNG with the mapped values', async (t) => {
  const data = uniform(4 * 1 * 4 * 4, 77);
  const png = await imageGrid(new Tensor(data, [4, 1, 4, 4], 'float32'), { size: 8 });
  const meta = await sharp(png).metadata();
  // sharp 0.35 decodes to sRGB (3 channels) unless asked for b-w explicitly.
  const { data: pixels, info } = await sharp(png).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  t.log(`grayscale grid: ${meta.width}x${meta.height}, channels ${meta.channels}, space ${meta.space}; IHDR colour type ${png[25]}`);
  t.is(meta.channels, 1);
  t.is(png[25], 0); // PNG colour type 0 = grayscale
  t.is(info.channels, 1);
  // Image 3 (row 1, col 1), destination (5, 2) → source (2, 1).
  t.is(pixels[(8 + 5) * 16 + 8 + 2], expectedByte(data[3 * 16 + 2 * 4 + 1]));
});

test('bad shapes and options are rejected', async (t) => {
  const bad: [number[], string][] = [
    [[3, 8, 8], 'Expected images of shape [N, 1|3, H, W] but received [3, 8, 8]'],
    [[2, 4, 8, 8], 'Expected images of shape [N, 1|3, H, W] but received [2, 4, 8, 8]'],
    [[0, 3, 8, 8], 'Expected images of shape [N, 1|3, H, W] but received [0, 3, 8, 8]'],
  ];
  for (const [shape, message] of bad) {
    const n = shape.reduce((a, b) => a * b, 1);
    const images = new Tensor(new Float32Array(n), shape, 'float32');
    await t.throwsAsync(imageGrid(images), { message });
    t.throws(() => toUint8Image(images), { message });
  }
  const ok = new Tensor(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4], 'float32');
  await t.throwsAsync(imageGrid(ok, { columns: 0 }), { message: /columns/ });
  await t.throwsAsync(imageGrid(ok, { size: 2.5 }), { message: /size/ });
  await t.throwsAsync(imageGrid(ok, { padding: -1 }), { message: /padding/ });
  const u8 = new Tensor(new Uint8Array(2 * 3 * 4 * 4), [2, 3, 4, 4], 'uint8');
  t.throws(() => toUint8Image(u8), { message: /float32/ });
});

async function frames(n: number, size = 16): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const v = -1 + (2 * i) / (n - 1);
    out.push(await imageGrid(new Tensor(new Float32Array(4 * 3 * 4 * 4).fill(v), [4, 3, 4, 4], 'float32'), { size: size / 2 }));
  }
  return out;
}

for (const ext of ['webp', 'gif'] as const) {
  test(`time-lapse of 5 frames is an animated ${ext} with per-frame delays`, async (t) => {
    const dir = tempDir();
    const file = path.join(dir, `timelapse.${ext}`);
    await writeTimelapse(await frames(5), file, { delayMs: 100, lastDelayMs: 2000 });
    const meta = await sharp(file, { animated: true }).metadata();
    t.log(`${ext}: format ${meta.format}, ${fs.statSync(file).size} bytes, pages ${meta.pages}, pageHeight ${meta.pageHeight}, loop ${meta.loop}, delay ${JSON.stringify(meta.delay)}`);
    t.is(meta.format, ext);
    t.is(meta.pages, 5);
    t.is(meta.width, 16);
    t.is(meta.pageHeight, 16);
    t.is(meta.loop, 0);
    t.deepEqual(meta.delay, [100, 100, 100, 100, 2000]);
    t.deepEqual(fs.readdirSync(dir), [`timelapse.${ext}`]); // no temporary file left behind
    // Frames are distinct: first page black, last page white.
    const first = await sharp(file, { page: 0 }).raw().toBuffer();
    const last = await sharp(file, { page: 4 }).raw().toBuffer();
    t.log(`${ext}: page 0 pixel ${first[0]}, page 4 pixel ${last[0]}`);
    t.true(first[0] < 10 && last[0] > 245);
  });
}

test('time-lapse defaults are 120 ms and 1500 ms for the last frame', async (t) => {
  const file = path.join(tempDir(), 'defaults.webp');
  await writeTimelapse(await frames(3), file);
  const meta = await sharp(file, { animated: true }).metadata();
  t.log(`defaults: pages ${meta.pages}, delay ${JSON.stringify(meta.delay)}`);
  t.deepEqual(meta.delay, [120, 120, 1500]);
});

test('grayscale grids make a time-lapse too', async (t) => {
  const file = path.join(tempDir(), 'gray.gif');
  const gray = [];
  // → bytes 0, 127, 255: sharp's GIF encoder once merged 1-channel frames 0 and 127 into one page.
  for (const v of [-1, -0.004, 1]) {
    gray.push(await imageGrid(new Tensor(new Float32Array(4 * 16).fill(v), [4, 1, 4, 4], 'float32')));
  }
  await writeTimelapse(gray, file);
  const meta = await sharp(file, { animated: true }).metadata();
  const pixels = [];
  for (let page = 0; page < (meta.pages ?? 0); page++) pixels.push((await sharp(file, { page }).raw().toBuffer())[0]);
  t.log(`gray gif: pages ${meta.pages}, ${meta.width}x${meta.pageHeight}, delay ${JSON.stringify(meta.delay)}, first pixel per page ${JSON.stringify(pixels)}`);
  t.is(meta.pages, 3);
  t.deepEqual(pixels, [0, 127, 255]);
});

test('time-lapse rejects frames of different sizes, naming the first mismatch, and bad names', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'bad.webp');
  const mixed = [...(await frames(3, 16)), ...(await frames(2, 32))];
  const err = await t.throwsAsync(writeTimelapse(mixed, file));
  t.log(err?.message);
  t.is(err?.message, 'Expected every frame to be 16x16 like frame 0 but frame 3 is 32x32');
  t.false(fs.existsSync(file));
  await t.throwsAsync(writeTimelapse(await frames(2), path.join(dir, 'x.png')), { message: /\.webp or \.gif/ });
  await t.throwsAsync(writeTimelapse([], file), { message: /at least one frame/ });
  t.deepEqual(fs.readdirSync(dir), []);
});
