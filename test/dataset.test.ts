import test from 'ava';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { Command } from 'commander';
import { DatasetWriter, buildPyramid, levelResolutions, openDataset, prepareDataset, registerPrepareCommand } from '../lib/dataset';

const REFERENCE = path.join(__dirname, 'reference', 'pyramid.py');

const tempDirs: string[] = [];
function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `progan-dataset-${tag}-`));
  tempDirs.push(dir);
  return dir;
}
test.after.always(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Deterministic noise, so a failure can be reproduced. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 255;
  }
  return out;
}

function rawImage(width: number, height: number, channels: 1 | 3 | 4, seed: number) {
  return sharp(Buffer.from(noise(width * height * channels, seed)), { raw: { width, height, channels } });
}

/** Pixel (x, y) of image `index` at level r of an NCHW array. */
function pixel(level: Uint8Array, channels: number, r: number, index: number, x: number, y: number): number[] {
  const base = index * channels * r * r;
  return Array.from({ length: channels }, (_, c) => level[base + c * r * r + y * r + x]);
}

/** Runs the numpy reference on a top level and returns its levels R..4 back to back. */
function referencePyramid(top: Uint8Array, n: number, c: number, r: number, dir: string): { levels: Uint8Array; log: string } {
  const src = path.join(dir, `top-${r}.raw`);
  const dst = path.join(dir, `ref-${r}.raw`);
  fs.writeFileSync(src, top);
  const log = execFileSync('python3', [REFERENCE, src, String(n), String(c), String(r), dst], { encoding: 'utf8' }).trim();
  return { levels: new Uint8Array(fs.readFileSync(dst)), log };
}

/** Mismatching bytes between a dataset file's levels and the numpy reference built from its top level. */
function compareWithReference(file: string, dir: string) {
  const ds = openDataset(file, { verify: true });
  const { count: n, channels: c, resolution: r } = ds.header;
  const ref = referencePyramid(ds.level(r), n, c, r, dir);
  let at = 0;
  let mismatches = 0;
  let compared = 0;
  for (const res of levelResolutions(r)) {
    const mine = ds.level(res);
    for (let i = 0; i < mine.length; i++) if (mine[i] !== ref.levels[at + i]) mismatches++;
    compared += mine.length;
    at += mine.length;
  }
  ds.close();
  return { mismatches, compared, referenceBytes: ref.levels.length, log: ref.log };
}

async function makeMixedFolder(): Promise<string> {
  const dir = tempDir('folder');
  fs.mkdirSync(path.join(dir, 'sub'));
  await rawImage(100, 60, 3, 1).jpeg({ quality: 90 }).toFile(path.join(dir, 'a_wide.jpg'));
  // 40×40 RGBA: left half fully transparent but *red* underneath, right half opaque blue.
  const rgba = Buffer.alloc(40 * 40 * 4);
  for (let y = 0; y < 40; y++) {
    for (let x = 0; x < 40; x++) {
      const o = (y * 40 + x) * 4;
      if (x < 20) rgba.set([255, 0, 0, 0], o);
      else rgba.set([0, 0, 255, 255], o);
    }
  }
  await sharp(rgba, { raw: { width: 40, height: 40, channels: 4 } }).png().toFile(path.join(dir, 'b_rgba.png'));
  await rawImage(30, 30, 1, 2).png().toFile(path.join(dir, 'c_gray.png'));
  await rawImage(64, 64, 3, 3).webp({ lossless: true }).toFile(path.join(dir, 'd.webp'));
  await rawImage(50, 50, 3, 4).png().toFile(path.join(dir, 'sub', 'e.png'));
  fs.writeFileSync(path.join(dir, 'bad_corrupt.jpg'), Buffer.from(noise(5000, 5)));
  const full = await rawImage(64, 64, 3, 6).png().toBuffer();
  fs.writeFileSync(path.join(dir, 'bad_truncated.png'), full.subarray(0, Math.floor(full.length * 0.4)));
  await rawImage(1, 1, 3, 7).png().toFile(path.join(dir, 'bad_tiny.png'));
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image\n');
  return dir;
}

test('folder: good images land, bad ones are skipped by name, alpha is composited', async (t) => {
  const dir = await makeMixedFolder();
  const out = path.join(tempDir('out'), 'mixed.pgds');
  const progress: number[] = [];
  const report = await prepareDataset({ input: dir, output: out, resolution: 16 }, (done) => progress.push(done));
  t.log(`count=${report.count} ignored=${report.ignored} skipped=${JSON.stringify(report.skipped)}`);
  t.is(report.count, 5);
  t.is(report.ignored, 1);
  t.deepEqual(report.skipped.map((s) => s.file), ['bad_corrupt.jpg', 'bad_tiny.png', 'bad_truncated.png']);
  t.regex(report.skipped[1].reason, /too small: 1×1/);
  t.true(report.skipped.every((s) => s.reason.length > 10));
  t.is(progress.length, 8);
  t.is(progress.at(-1), 8);

  const ds = openDataset(out, { verify: true });
  t.is(ds.header.count, 5);
  t.is(ds.header.channels, 3);
  t.is(ds.header.labelSize, 0);
  t.is(ds.labels(), null);
  const top = ds.level(16);
  t.is(top.length, 5 * 3 * 16 * 16);
  t.is(ds.level(4).length, 5 * 3 * 4 * 4);
  // Sorted order of the good files: a_wide, b_rgba, c_gray, d, sub/e.
  const transparent = pixel(top, 3, 16, 1, 1, 8);
  const opaque = pixel(top, 3, 16, 1, 14, 8);
  t.log(`rgba transparent region -> ${transparent}, opaque region -> ${opaque}`);
  t.deepEqual(transparent, [255, 255, 255]);
  t.deepEqual(opaque, [0, 0, 255]);
  // A grayscale source expanded to 3 channels has identical planes.
  const g = 2 * 3 * 256;
  t.deepEqual(top.subarray(g, g + 256), top.subarray(g + 256, g + 512));
  t.deepEqual(top.subarray(g, g + 256), top.subarray(g + 512, g + 768));
  ds.close();

  // pad: letterbox on the background colour; the transparent half also takes that colour.
  const padded = path.join(path.dirname(out), 'padded.pgds');
  await prepareDataset({ input: dir, output: padded, resolution: 16, fit: 'pad', background: '#00ff00' });
  const pd = openDataset(padded);
  const border = pixel(pd.level(16), 3, 16, 0, 8, 0);
  const green = pixel(pd.level(16), 3, 16, 1, 1, 8);
  t.log(`pad border -> ${border}, transparent on #00ff00 -> ${green}`);
  t.deepEqual(border, [0, 255, 0]);
  t.deepEqual(green, [0, 255, 0]);
  pd.close();

  // One channel: colour images become grayscale.
  const gray = path.join(path.dirname(out), 'gray.pgds');
  const gr = await prepareDataset({ input: dir, output: gray, resolution: 8, channels: 1 });
  t.is(gr.channels, 1);
  t.is(openDataset(gray).level(8).length, 5 * 64);

  const error = await t.throwsAsync(prepareDataset({ input: dir, output: out, resolution: 16, strict: true }));
  t.log(`strict: ${error?.message}`);
  t.regex(error!.message, /bad_corrupt\.jpg/);
  // No temp or spool files are left beside the output after a failure.
  t.deepEqual(fs.readdirSync(path.dirname(out)).sort(), ['gray.pgds', 'mixed.pgds', 'padded.pgds']);
});

test('TIFF, animated GIF (first frame), AVIF and stretch', async (t) => {
  const dir = tempDir('formats');
  const solid = (r: number, g: number, b: number) => sharp({ create: { width: 24, height: 12, channels: 3, background: { r, g, b } } });
  await solid(200, 10, 10).tiff().toFile(path.join(dir, 'a.tiff'));
  const frames = [await solid(10, 200, 10).png().toBuffer(), await solid(10, 10, 200).png().toBuffer()];
  await sharp(frames, { join: { animated: true } }).gif({ delay: [100, 100] }).toFile(path.join(dir, 'b.gif'));
  await solid(100, 100, 100).avif({ lossless: true }).toFile(path.join(dir, 'c.avif'));
  await solid(250, 250, 0).png().toFile(path.join(dir, 'd.png'));
  const out = path.join(dir, 'formats.pgds');
  const report = await prepareDataset({ input: dir, output: out, resolution: 8, fit: 'stretch' });
  t.deepEqual(report.skipped, []);
  const top = openDataset(out).level(8);
  const centres = [0, 1, 2, 3].map((i) => pixel(top, 3, 8, i, 4, 4));
  t.log(`centre pixels: ${JSON.stringify(centres)}`);
  const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) <= 6);
  t.true(close(centres[0], [200, 10, 10]));
  t.true(close(centres[1], [10, 200, 10]), 'the first GIF frame');
  t.true(close(centres[2], [100, 100, 100]));
  t.true(close(centres[3], [250, 250, 0]));
});

test('folder with a labels CSV', async (t) => {
  const dir = tempDir('csv');
  fs.mkdirSync(path.join(dir, 'x'));
  const names = ['cat1.png', 'cat2.png', 'dog1.png', 'x/dog2.png', 'x/bird.png'];
  for (const [i, n] of names.entries()) await rawImage(20, 20, 3, 10 + i).png().toFile(path.join(dir, n));
  const csv = path.join(tempDir('csvfile'), 'labels.csv');
  fs.writeFileSync(csv, 'file,label\ncat1.png,cat\ncat2.png,cat\ndog1.png,dog\nx/dog2.png,dog\n"bird.png","bird"\n');
  const out = path.join(tempDir('out'), 'csv.pgds');
  const report = await prepareDataset({ input: dir, output: out, resolution: 8, labels: csv });
  const ds = openDataset(out, { verify: true });
  t.deepEqual(ds.header.labelNames, ['bird', 'cat', 'dog']);
  t.is(report.labelSize, 3);
  // Sorted files: cat1, cat2, dog1, x/bird, x/dog2.
  t.deepEqual(Array.from(ds.labels()!), [1, 1, 2, 0, 2]);
  fs.writeFileSync(csv, 'cat1.png,cat\ndog1.png,dog\n');
  const error = await t.throwsAsync(prepareDataset({ input: dir, output: out, resolution: 8, labels: csv }));
  t.log(error?.message);
  t.regex(error!.message, /no label for 3 image\(s\): cat2\.png, x\/bird\.png, x\/dog2\.png/);
});

test('pyramid matches the numpy reference bit for bit, ties included', async (t) => {
  const dir = tempDir('pyramid');
  const cases: { n: number; c: 1 | 3; r: number; make: (i: number, size: number) => Uint8Array }[] = [
    // Random bytes: a quarter of the first-level means are exact .5 ties.
    { n: 6, c: 3, r: 64, make: (i, size) => noise(size, 100 + i) },
    // Few distinct values make ties at every level (values k/4, k/16, …).
    { n: 4, c: 1, r: 32, make: (i, size) => noise(size, 200 + i).map((v) => v & 3) },
    // Hand-made ties: 2×2 blocks averaging to 0.5, 1.5, 2.5, 254.5 (half to even: 0, 2, 2, 254).
    {
      n: 4,
      c: 1,
      r: 8,
      make: (i, size) => {
        const img = new Uint8Array(size);
        const pairs = [[0, 1], [1, 2], [2, 3], [254, 255]][i];
        for (let p = 0; p < size; p++) img[p] = pairs[Math.floor(p / 8) % 2];
        return img;
      },
    },
    // 1024²: deep levels carry more fractional bits than float32 holds, so float32 rounding must match too.
    { n: 1, c: 1, r: 1024, make: (i, size) => noise(size, 300 + i) },
  ];
  let totalCompared = 0;
  let totalTies = 0;
  for (const { n, c, r, make } of cases) {
    const file = path.join(dir, `p${r}.pgds`);
    const writer = new DatasetWriter(file, { resolution: r, channels: c, source: 'test' });
    for (let i = 0; i < n; i++) writer.append(make(i, c * r * r));
    writer.finish({ labelNames: [] });
    const result = compareWithReference(file, dir);
    t.log(`R=${r} N=${n} C=${c}: ${result.compared} bytes compared, ${result.mismatches} mismatching (reference: ${result.log})`);
    t.is(result.referenceBytes, result.compared);
    t.is(result.mismatches, 0);
    totalCompared += result.compared;
    totalTies += Number(/ties=(\d+)/.exec(result.log)![1]);
  }
  t.log(`total bytes compared: ${totalCompared}, exact .5 ties met: ${totalTies}`);

  // The hand-made ties round half to even: 0.5 → 0, 1.5 → 2, 2.5 → 2, 254.5 → 254.
  const means = [0, 1, 2, 3].map((i) => {
    const img = new Uint8Array(64);
    const pairs = [[0, 1], [1, 2], [2, 3], [254, 255]][i];
    for (let p = 0; p < 64; p++) img[p] = pairs[Math.floor(p / 8) % 2];
    return buildPyramid(img, 1, 8)[1][0];
  });
  t.deepEqual(means, [0, 2, 2, 254]);
  // The comparison can only catch a rounding mistake if ties occurred: the reference counts them.
  t.true(totalTies > 1000, `only ${totalTies} ties`);
});

// Serial, so the printed time is not shared with the other tests of this file.
test.serial('emoji-datasource-google at 32² with category labels', async (t) => {
  const dir = tempDir('emoji');
  const out = path.join(dir, 'emoji.pgds');
  const started = Date.now();
  const report = await prepareDataset({ input: 'emoji-datasource-google', output: out, resolution: 32, labels: 'category' });
  const seconds = (Date.now() - started) / 1000;
  t.log(`emoji: ${report.count} images, ${report.labelSize} classes, ${report.skipped.length} skipped in ${seconds.toFixed(2)} s (${(report.count / seconds).toFixed(0)} img/s)`);
  t.is(report.count, 3786);
  t.is(report.skipped.length, 0);
  t.is(report.labelSize, 10);
  const ds = openDataset(out, { verify: true });
  const h = ds.header;
  t.is(h.resolution, 32);
  t.is(h.channels, 3);
  t.deepEqual(h.levels.map((l) => l.resolution), [32, 16, 8, 4]);
  for (const l of h.levels) {
    t.is(l.bytes, 3786 * 3 * l.resolution * l.resolution);
    t.is(l.offset % 64, 0);
    t.is(ds.level(l.resolution).length, l.bytes);
  }
  t.deepEqual(h.labelNames, [...h.labelNames].sort());
  t.true(h.labelNames.includes('Smileys & Emotion'));
  const labels = ds.labels()!;
  t.is(labels.length, 3786);
  const perClass = new Array(10).fill(0);
  for (const l of labels) perClass[l]++;
  t.log(`per class: ${h.labelNames.map((n, i) => `${n}=${perClass[i]}`).join(', ')}`);
  t.true(perClass.every((k) => k > 0));
  t.regex(h.source, /emoji-datasource-google@16/);
  ds.close();
  // Real images through the reference as well.
  const result = compareWithReference(out, dir);
  t.log(`emoji pyramid: ${result.compared} bytes compared, ${result.mismatches} mismatching (${result.log})`);
  t.is(result.mismatches, 0);
});

function idx3(images: Uint8Array, count: number, rows: number, cols: number): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32BE(0x803, 0);
  head.writeUInt32BE(count, 4);
  head.writeUInt32BE(rows, 8);
  head.writeUInt32BE(cols, 12);
  return Buffer.concat([head, images]);
}

function idx1(labels: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0x801, 0);
  head.writeUInt32BE(labels.length, 4);
  return Buffer.concat([head, labels]);
}

test('IDX (MNIST layout, gzipped) with labels', async (t) => {
  const dir = tempDir('idx');
  const count = 20;
  const pixels = noise(count * 28 * 28, 42);
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10);
  const images = path.join(dir, 'train-images-idx3-ubyte.gz');
  fs.writeFileSync(images, zlib.gzipSync(idx3(pixels, count, 28, 28)));
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), zlib.gzipSync(idx1(labels)));

  const out = path.join(dir, 'mnist.pgds');
  const report = await prepareDataset({ input: images, output: out, resolution: 32 });
  t.is(report.count, count);
  t.is(report.channels, 1);
  t.is(report.labelSize, 10);
  const ds = openDataset(out, { verify: true });
  t.deepEqual(Array.from(ds.labels()!), Array.from(labels));
  // At 32² the image is the digit padded by 2 zeros on each side, untouched.
  const top = ds.level(32);
  let diff = 0;
  for (let i = 0; i < count; i++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const want = inside ? pixels[i * 784 + (y - 2) * 28 + (x - 2)] : 0;
        if (top[i * 1024 + y * 32 + x] !== want) diff++;
      }
    }
  }
  t.log(`idx: ${count} images, ${diff} pixels differ from the padded source`);
  t.is(diff, 0);
  ds.close();

  const rgb = await prepareDataset({ input: images, output: path.join(dir, 'mnist16.pgds'), resolution: 16, channels: 3 });
  t.is(rgb.channels, 3);
  const l16 = openDataset(path.join(dir, 'mnist16.pgds')).level(16);
  t.is(l16.length, count * 3 * 256);
  t.deepEqual(l16.subarray(0, 256), l16.subarray(256, 512));

  const badMagic = path.join(dir, 'bad-images-idx3-ubyte');
  const b = idx3(pixels, count, 28, 28);
  b.writeUInt32BE(0x804, 0);
  fs.writeFileSync(badMagic, b);
  const e1 = await t.throwsAsync(prepareDataset({ input: badMagic, output: out, resolution: 32 }));
  t.regex(e1!.message, /bad IDX magic 0x00000804/);
  const short = path.join(dir, 'short-images-idx3-ubyte');
  fs.writeFileSync(short, idx3(pixels, count, 28, 28).subarray(0, 1000));
  const e2 = await t.throwsAsync(prepareDataset({ input: short, output: out, resolution: 32 }));
  t.regex(e2!.message, /20 images of 28×28 need 15696 bytes, the file has 1000/);
  fs.writeFileSync(path.join(dir, 'short-labels-idx1-ubyte'), idx1(labels.subarray(0, 5)));
  fs.writeFileSync(short, idx3(pixels, count, 28, 28));
  const e3 = await t.throwsAsync(prepareDataset({ input: short, output: out, resolution: 32 }));
  t.regex(e3!.message, /has 5 labels but .* has 20 images/);
  t.log(`idx errors: ${e1!.message} | ${e2!.message} | ${e3!.message}`);
});

test('bad inputs and damaged files give errors that name the problem', async (t) => {
  const dir = tempDir('bad');
  const out = path.join(dir, 'x.pgds');
  const messages: string[] = [];
  const expectError = async (p: Promise<unknown>, pattern: RegExp) => {
    const e = await t.throwsAsync(p);
    messages.push(e!.message);
    t.regex(e!.message, pattern);
  };
  await expectError(prepareDataset({ input: path.join(dir, 'nope'), output: out, resolution: 16 }), /Input not found: .*nope/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 12 }), /^Expected a power of two from 4 to 1024 for resolution but received 12$/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 2048 }), /for resolution but received 2048/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 16, background: 'blue' }), /^Expected a colour #rrggbb for background but received "blue"$/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 16, fit: 'zoom' as never }), /^Expected one of crop, pad, stretch for fit but received "zoom"$/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 16, channels: 2 as never }), /^Expected 1 or 3 for channels but received 2$/);
  await expectError(prepareDataset({ input: dir, output: out, resolution: 16 }), /No images found/);
  for (let i = 0; i < 3; i++) await rawImage(16, 16, 3, i).png().toFile(path.join(dir, `img${i}.png`));
  await expectError(prepareDataset({ input: dir, output: out, resolution: 16 }), /Only 3 usable image\(s\).*at least 4/);
  await expectError(prepareDataset({ input: 'emoji-datasource-google', output: out, resolution: 16, labels: 'name' }), /Expected one of category, subcategory for labels/);

  // A good file to damage.
  await rawImage(16, 16, 3, 9).png().toFile(path.join(dir, 'img3.png'));
  await prepareDataset({ input: dir, output: out, resolution: 16 });
  const good = fs.readFileSync(out);
  const truncated = path.join(dir, 'truncated.pgds');
  fs.writeFileSync(truncated, good.subarray(0, good.length - 100));
  await expectError(Promise.resolve().then(() => openDataset(truncated)), /truncated\.pgds: truncated: the header describes \d+ bytes but the file has \d+/);
  fs.writeFileSync(truncated, good.subarray(0, 30));
  await expectError(Promise.resolve().then(() => openDataset(truncated)), /truncated\.pgds: truncated: header of \d+ bytes/);
  const magic = path.join(dir, 'magic.pgds');
  const m = Buffer.from(good);
  m.write('PNG!', 0, 'ascii');
  fs.writeFileSync(magic, m);
  await expectError(Promise.resolve().then(() => openDataset(magic)), /magic\.pgds: not a progan dataset: bad magic/);
  const flipped = path.join(dir, 'flipped.pgds');
  const f = Buffer.from(good);
  f[f.length - 1] ^= 0xff;
  fs.writeFileSync(flipped, f);
  t.notThrows(() => openDataset(flipped).close());
  await expectError(Promise.resolve().then(() => openDataset(flipped, { verify: true })), /flipped\.pgds: checksum mismatch/);
  t.log(messages.join('\n'));
});

test('file layout: magic, aligned header, offsets and checksum as specified', async (t) => {
  const dir = tempDir('layout');
  const file = path.join(dir, 'l.pgds');
  const w = new DatasetWriter(file, { resolution: 8, channels: 3, source: 'layout test' });
  for (let i = 0; i < 5; i++) w.append(noise(3 * 64, i + 1), i % 2);
  w.finish({ labelNames: ['even', 'odd'] });
  const bytes = fs.readFileSync(file);
  t.is(bytes.toString('ascii', 0, 8), 'PGDS0001');
  const h = bytes.readUInt32LE(8);
  t.is((12 + h) % 64, 0);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + h));
  t.deepEqual(Object.keys(header), ['formatVersion', 'resolution', 'channels', 'count', 'layout', 'labelSize', 'labelNames', 'levels', 'labels', 'checksum', 'source', 'created']);
  t.deepEqual(header.levels, [
    { resolution: 8, offset: 12 + h, bytes: 5 * 3 * 64 },
    { resolution: 4, offset: 12 + h + 960, bytes: 5 * 3 * 16 },
  ]);
  t.deepEqual(header.labels, { offset: 12 + h + 960 + 256, bytes: 20 });
  t.is(bytes.length, 12 + h + 960 + 256 + 20);
  t.is(header.checksum.value, zlib.crc32(bytes.subarray(12 + h)));
  t.deepEqual(Array.from(new Int32Array(bytes.buffer.slice(bytes.byteOffset + header.labels.offset, bytes.byteOffset + bytes.length))), [0, 1, 0, 1, 0]);
  t.is(crypto.createHash('sha1').update(bytes.subarray(header.levels[0].offset, header.levels[0].offset + 192)).digest('hex'),
    crypto.createHash('sha1').update(noise(192, 1)).digest('hex'));
});

test('prepare command prints the summary and skipped files', async (t) => {
  const dir = await makeMixedFolder();
  const out = path.join(tempDir('cli'), 'cli.pgds');
  const program = new Command().exitOverride();
  registerPrepareCommand(program);
  let stdout = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['prepare', dir, out, '--resolution', '8', '--fit', 'stretch'], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  t.log(stdout);
  t.regex(stdout, /5 images, 8×8, 3 channels/);
  t.regex(stdout, /bad_truncated\.png: cannot decode/);
  const again = new Command().exitOverride();
  registerPrepareCommand(again);
  const e = await t.throwsAsync(again.parseAsync(['prepare', dir, out, '-r', '12'], { from: 'user' }));
  t.regex(e!.message, /Expected a power of two from 4 to 1024 for resolution but received 12/);
});
