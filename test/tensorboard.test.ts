import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor } from '../lib/tensor';
import { imageGrid } from '../lib/images';
import { TensorBoardWriter, crc32c, maskedCrc32c, pngInfo } from '../lib/tensorboard';

const READER = path.join(__dirname, 'reference', 'tfevents.py');

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-tensorboard-'));
  tempDirs.push(dir);
  return dir;
}
test.after.always(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

interface DecodedEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: {
    tag: string;
    simple_value?: number;
    image?: { height: number; width: number; colorspace: number; encoded_image_string: string; encoded_length: number };
  }[];
}

test('CRC32C check values', (t) => {
  const check = crc32c(Buffer.from('123456789'));
  t.log(`crc32c("123456789") = 0x${check.toString(16)}, crc32c(32 zero bytes) = 0x${crc32c(new Uint8Array(32)).toString(16)}`);
  t.is(check, 0xe3069283);
  t.is(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4 test vector
  t.is(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4
  const c = 0xe3069283;
  t.is(maskedCrc32c(Buffer.from('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
});

test('scalars and an image round-trip through an independent Python reader', async (t) => {
  const dir = path.join(tempDir(), 'logs', 'run1'); // created by the writer
  const rgbPng = await imageGrid(new Tensor(Float32Array.from({ length: 4 * 3 * 4 * 4 }, (_, i) => Math.sin(i)), [4, 3, 4, 4], 'float32'), {
    size: 8,
    padding: 1,
  });
  const grayPng = await imageGrid(new Tensor(Float32Array.from({ length: 2 * 16 }, (_, i) => Math.cos(i)), [2, 1, 4, 4], 'float32'));

  const before = Date.now() / 1000;
  const writer = new TensorBoardWriter(dir);
  const scalars: [string, number, number][] = [
    ['Loss/G', 0.1, 0],
    ['Loss/D', -3.14159, 1],
    ['Progress/lod', 2.5, 600_000],
    ['Progress/kimg', 12345.678, 2 ** 40 + 3], // beyond 32 bits: multi-byte varint
    ['Loss/G', 1e-7, 2 ** 53 - 1],
  ];
  for (const [tag, value, step] of scalars) writer.scalar(tag, value, step);
  writer.image('samples/rgb', rgbPng, 7);
  writer.image('samples/gray', grayPng, 8);
  writer.flush();
  writer.close();
  t.throws(() => writer.scalar('x', 1, 1), { message: /closed/ });
  const after = Date.now() / 1000;

  const files = fs.readdirSync(dir);
  t.log(`files: ${files.join(', ')} (${fs.statSync(writer.file).size} bytes)`);
  t.deepEqual(files, [path.basename(writer.file)]);
  t.regex(files[0], new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));

  const decoded = JSON.parse(execFileSync('python3', [READER, writer.file], { encoding: 'utf8' })) as { bytes: number; events: DecodedEvent[] };
  const events = decoded.events;
  t.log(`python reader: ${decoded.bytes} bytes, ${events.length} records, all CRCs valid`);
  t.is(events.length, 1 + scalars.length + 2);
  t.is(events[0].file_version, 'brain.Event:2');
  t.is(events[0].summary, undefined);
  for (const e of events) t.true(e.wall_time >= before - 1e-3 && e.wall_time <= after + 1e-3, `wall_time ${e.wall_time}`);

  scalars.forEach(([tag, value, step], i) => {
    const e = events[1 + i];
    const v = e.summary?.[0];
    t.log(`scalar ${v?.tag} step ${e.step} = ${v?.simple_value} (wrote ${value}, float32 ${Math.fround(value)})`);
    t.is(e.summary?.length, 1);
    t.is(v?.tag, tag);
    t.is(e.step, step);
    t.is(v?.simple_value, Math.fround(value));
  });

  const images: [string, Buffer, number, number][] = [
    ['samples/rgb', rgbPng, 7, 3],
    ['samples/gray', grayPng, 8, 1],
  ];
  images.forEach(([tag, png, step, colorspace], i) => {
    const e = events[1 + scalars.length + i];
    const v = e.summary?.[0];
    const info = pngInfo(png);
    t.log(`image ${v?.tag} step ${e.step}: ${v?.image?.width}x${v?.image?.height} colorspace ${v?.image?.colorspace}, ${v?.image?.encoded_length} bytes`);
    t.is(v?.tag, tag);
    t.is(e.step, step);
    t.is(v?.simple_value, undefined);
    t.deepEqual(
      { width: v?.image?.width, height: v?.image?.height, colorspace: v?.image?.colorspace },
      { width: info.width, height: info.height, colorspace },
    );
    t.true(Buffer.from(v?.image?.encoded_image_string ?? '', 'base64').equals(png));
  });
  t.deepEqual([pngInfo(rgbPng).width, pngInfo(rgbPng).height], [17, 17]);
  t.deepEqual([pngInfo(grayPng).width, pngInfo(grayPng).height], [8, 4]);

  // The reader really checks the framing: flip one byte in the last record's data.
  const corrupt = Buffer.from(fs.readFileSync(writer.file));
  corrupt[corrupt.length - 10] ^= 1;
  const badFile = path.join(path.dirname(dir), 'corrupt.tfevents');
  fs.writeFileSync(badFile, corrupt);
  const bad = spawnSync('python3', [READER, badFile], { encoding: 'utf8' });
  t.log(`corrupted copy: exit ${bad.status}, ${bad.stderr.trim()}`);
  t.is(bad.status, 1);
  t.regex(bad.stderr, new RegExp(`record ${events.length - 1}: data CRC mismatch`));
});

test('a second writer in the same second gets its own file; bad inputs are rejected', (t) => {
  const dir = tempDir();
  const a = new TensorBoardWriter(dir);
  const b = new TensorBoardWriter(dir);
  t.log(`two writers: ${path.basename(a.file)}, ${path.basename(b.file)}`);
  t.not(a.file, b.file);
  t.throws(() => a.image('x', Buffer.from('not a png'), 0), { message: /PNG/ });
  t.throws(() => a.scalar('', 1, 0), { message: /tag/ });
  t.throws(() => a.scalar('x', 1, 1.5), { message: /integer step/ });
  a.close();
  b.close();
  a.close(); // idempotent
});
