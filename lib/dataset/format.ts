/**
 * The `.pgds` dataset file: magic, JSON header, then uint8 NCHW levels and int32 labels, each
 * section 64-byte aligned so a C++ reader can mmap it and hand out aligned pointers.
 *
 *   0..7     "PGDS0001"
 *   8..11    uint32 LE  H = JSON header length (including trailing space padding)
 *   12..12+H UTF-8 JSON header; the first data byte is at 12 + H, a multiple of 64
 *   then     level R, R/2, …, 4 ([N, C, r, r] uint8 each), then labels (N × int32 LE)
 *
 * The checksum is the CRC-32 of every byte from 12 + H to the end of the file, padding included.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { z } from 'zod';
import { buildPyramid, levelResolutions } from './pyramid';

export const MAGIC = 'PGDS0001';
export const FORMAT_VERSION = 1;
export const ALIGN = 64;
const PREAMBLE = 12;

export interface LevelEntry {
  resolution: number;
  offset: number;
  bytes: number;
}

export interface DatasetHeader {
  formatVersion: 1;
  resolution: number;
  channels: 1 | 3;
  count: number;
  layout: 'NCHW';
  labelSize: number;
  labelNames: string[];
  levels: LevelEntry[];
  labels: { offset: number; bytes: number } | null;
  checksum: { algorithm: 'crc32'; value: number };
  source: string;
  created: string;
}

const section = z.object({ offset: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() });
const headerSchema = z.object({
  formatVersion: z.literal(1),
  resolution: z.number().int(),
  channels: z.union([z.literal(1), z.literal(3)]),
  count: z.number().int().nonnegative(),
  layout: z.literal('NCHW'),
  labelSize: z.number().int().nonnegative(),
  labelNames: z.array(z.string()),
  levels: z.array(section.extend({ resolution: z.number().int() })),
  labels: section.nullable(),
  checksum: z.object({ algorithm: z.literal('crc32'), value: z.number().int().min(0).max(0xffffffff) }),
  source: z.string(),
  created: z.string(),
});

export function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** Offsets of every section for a header of `headerLength` JSON bytes. */
function layout(headerLength: number, count: number, channels: number, resolution: number, labelled: boolean) {
  const dataStart = align(PREAMBLE + headerLength);
  let at = dataStart;
  const levels: LevelEntry[] = levelResolutions(resolution).map((r) => {
    const entry = { resolution: r, offset: align(at), bytes: count * channels * r * r };
    at = entry.offset + entry.bytes;
    return entry;
  });
  let labels: { offset: number; bytes: number } | null = null;
  if (labelled) {
    labels = { offset: align(at), bytes: count * 4 };
    at = labels.offset + labels.bytes;
  }
  return { dataStart, levels, labels, end: at };
}

export interface WriterOptions {
  resolution: number;
  channels: 1 | 3;
  source: string;
}

export interface FinishOptions {
  /** Class names; their count is the header's labelSize. Empty for an unlabelled dataset. */
  labelNames: string[];
}

/**
 * Appends images one at a time (in dataset order) and writes the file atomically on finish().
 * The image count is only known at the end (bad files are skipped), while levels are stored
 * level-major, so each level is spooled to its own temp file beside the output; memory stays
 * at one image whatever the dataset size.
 */
export class DatasetWriter {
  readonly output: string;
  private readonly options: WriterOptions;
  private readonly resolutions: number[];
  private readonly spools: { file: string; fd: number }[];
  private labels: number[] = [];
  private labelled: boolean | undefined;
  private count = 0;
  private closed = false;

  constructor(output: string, options: WriterOptions) {
    this.output = path.resolve(output);
    this.options = options;
    this.resolutions = levelResolutions(options.resolution);
    fs.mkdirSync(path.dirname(this.output), { recursive: true });
    this.spools = [];
    try {
      for (const r of this.resolutions) {
        const file = tempName(this.output, `level${r}`);
        this.spools.push({ file, fd: fs.openSync(file, 'wx+') });
      }
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  get size(): number {
    return this.count;
  }

  /** Adds one CHW uint8 image of R×R; `label` is a class index or null (all or none must have one). */
  append(image: Uint8Array, label: number | null = null): void {
    if (this.closed) throw new Error('DatasetWriter: already finished');
    const labelled = label !== null;
    if (this.labelled === undefined) this.labelled = labelled;
    else if (this.labelled !== labelled) throw new Error('DatasetWriter: either every image has a label or none has');
    const levels = buildPyramid(image, this.options.channels, this.options.resolution);
    levels.forEach((bytes, i) => writeAll(this.spools[i].fd, bytes));
    if (labelled) this.labels.push(label);
    this.count++;
  }

  /** Assembles header + spooled levels + labels into a temp file, fsyncs it and renames it over the output. */
  finish(options: FinishOptions): DatasetHeader {
    if (this.closed) throw new Error('DatasetWriter: already finished');
    const labelNames = options.labelNames;
    const labelled = this.labelled === true;
    if (labelled && labelNames.length === 0) throw new Error('DatasetWriter: labelled images need labelNames');
    for (const l of this.labels) {
      if (!Number.isInteger(l) || l < 0 || l >= labelNames.length) {
        throw new Error(`DatasetWriter: label ${l} is out of range 0..${labelNames.length - 1}`);
      }
    }
    const { resolution, channels, source } = this.options;
    const header: DatasetHeader = {
      formatVersion: FORMAT_VERSION,
      resolution,
      channels,
      count: this.count,
      layout: 'NCHW',
      labelSize: labelled ? labelNames.length : 0,
      labelNames: labelled ? labelNames : [],
      levels: [],
      labels: null,
      // The widest value while sizing the header; the real CRC is never longer, the rest is padding.
      checksum: { algorithm: 'crc32', value: 0xffffffff },
      source,
      created: new Date().toISOString(),
    };
    // Offsets are written in the header, so its length and the offsets depend on each other:
    // grow until stable (offsets only increase, so this ends after a step or two).
    let headerLength = 0;
    let plan = layout(headerLength, this.count, channels, resolution, labelled);
    for (;;) {
      header.levels = plan.levels;
      header.labels = plan.labels;
      const length = Buffer.byteLength(JSON.stringify(header));
      if (PREAMBLE + length <= plan.dataStart) break;
      headerLength = length;
      plan = layout(headerLength, this.count, channels, resolution, labelled);
    }

    const temp = tempName(this.output, 'tmp');
    let fd = -1;
    try {
      fd = fs.openSync(temp, 'wx');
      let crc = 0;
      let at = plan.dataStart;
      const emit = (bytes: Uint8Array, offset: number) => {
        if (offset > at) {
          const zeros = new Uint8Array(offset - at);
          crc = zlib.crc32(zeros, crc);
          writeAll(fd, zeros, at);
          at = offset;
        }
        crc = zlib.crc32(bytes, crc);
        writeAll(fd, bytes, at);
        at += bytes.length;
      };
      const chunk = Buffer.allocUnsafe(1 << 22);
      plan.levels.forEach((level, i) => {
        const spool = this.spools[i];
        let read = 0;
        let first = true;
        while (read < level.bytes) {
          const n = fs.readSync(spool.fd, chunk, 0, Math.min(chunk.length, level.bytes - read), read);
          if (n <= 0) throw new Error(`DatasetWriter: spool ${spool.file} is shorter than expected`);
          emit(chunk.subarray(0, n), first ? level.offset : at);
          first = false;
          read += n;
        }
        if (level.bytes === 0) emit(new Uint8Array(0), level.offset);
      });
      if (plan.labels) {
        const labels = Buffer.alloc(plan.labels.bytes);
        this.labels.forEach((l, i) => labels.writeInt32LE(l, i * 4));
        emit(labels, plan.labels.offset);
      }
      header.checksum.value = crc >>> 0;
      const json = Buffer.from(JSON.stringify(header).padEnd(plan.dataStart - PREAMBLE, ' '), 'utf8');
      if (PREAMBLE + json.length !== plan.dataStart) throw new Error('DatasetWriter: header does not fit its space');
      const preamble = Buffer.alloc(PREAMBLE);
      preamble.write(MAGIC, 0, 'ascii');
      preamble.writeUInt32LE(json.length, 8);
      writeAll(fd, preamble, 0);
      writeAll(fd, json, PREAMBLE);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = -1;
      fs.renameSync(temp, this.output);
      syncFolder(path.dirname(this.output));
    } catch (e) {
      if (fd >= 0) fs.closeSync(fd);
      fs.rmSync(temp, { force: true });
      this.abort();
      throw e;
    }
    this.abort();
    return header;
  }

  /** Removes the spool files; safe to call more than once. */
  abort(): void {
    this.closed = true;
    for (const spool of this.spools.splice(0)) {
      try {
        fs.closeSync(spool.fd);
      } catch {
        // already closed
      }
      fs.rmSync(spool.file, { force: true });
    }
  }
}

function tempName(output: string, tag: string): string {
  return `${output}.${tag}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  let done = 0;
  while (done < bytes.length) {
    const pos = position === undefined ? null : position + done;
    done += fs.writeSync(fd, bytes, done, bytes.length - done, pos);
  }
}

/** Makes the rename durable; some file systems refuse to open or fsync a folder, which is harmless. */
function syncFolder(folder: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(folder, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

export interface OpenOptions {
  /** Read the whole file and compare its CRC-32 with the header's. */
  verify?: boolean;
}

export interface DatasetFile {
  readonly path: string;
  readonly header: DatasetHeader;
  /** All N images at resolution r: N*C*r*r bytes, NCHW. Read from disk on first use, then cached. */
  level(resolution: number): Uint8Array;
  /** N class indices, or null for an unlabelled dataset. */
  labels(): Int32Array | null;
  /** Recomputes the checksum; throws on a mismatch. */
  verify(): void;
  close(): void;
}

/** Opens and validates a `.pgds` file (header, sizes, section bounds; the checksum with `verify`). */
export function openDataset(file: string, options: OpenOptions = {}): DatasetFile {
  const fail = (why: string) => new Error(`${file}: ${why}`);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw fail(`cannot open dataset (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const preamble = Buffer.alloc(PREAMBLE);
    const got = fs.readSync(fd, preamble, 0, PREAMBLE, 0);
    if (got >= MAGIC.length && preamble.toString('latin1', 0, MAGIC.length) !== MAGIC) {
      throw fail(`not a progan dataset: bad magic ${JSON.stringify(preamble.toString('latin1', 0, MAGIC.length))}, expected "${MAGIC}"`);
    }
    if (got < PREAMBLE) throw fail(`truncated: ${size} bytes is shorter than the ${PREAMBLE}-byte preamble`);
    const headerLength = preamble.readUInt32LE(8);
    if (PREAMBLE + headerLength > size) {
      throw fail(`truncated: header of ${headerLength} bytes does not fit in the file's ${size} bytes`);
    }
    const json = Buffer.alloc(headerLength);
    fs.readSync(fd, json, 0, headerLength, PREAMBLE);
    let raw: unknown;
    try {
      raw = JSON.parse(json.toString('utf8'));
    } catch (e) {
      throw fail(`header is not valid JSON (${(e as Error).message})`);
    }
    const parsed = headerSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw fail(`invalid header field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    const header = parsed.data as DatasetHeader;
    checkLayout(header, PREAMBLE + headerLength, size, fail);
    const dataset = new OpenDataset(file, fd, header, PREAMBLE + headerLength, size);
    if (options.verify) dataset.verify();
    return dataset;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function checkLayout(h: DatasetHeader, dataStart: number, size: number, fail: (why: string) => Error): void {
  const { resolution: R, channels: C, count: N } = h;
  if (dataStart % ALIGN !== 0) throw fail(`data starts at ${dataStart}, not a multiple of ${ALIGN}`);
  const expected = levelResolutions(R);
  if (expected.length === 0 || (R & (R - 1)) !== 0) throw fail(`resolution ${R} is not a power of two ≥ 4`);
  const got = h.levels.map((l) => l.resolution);
  if (got.join() !== expected.join()) throw fail(`levels ${got.join(', ')} do not match resolution ${R} (expected ${expected.join(', ')})`);
  if (h.labelNames.length !== 0 && h.labelNames.length !== h.labelSize) {
    throw fail(`labelSize ${h.labelSize} but ${h.labelNames.length} labelNames`);
  }
  if ((h.labelSize > 0) !== (h.labels !== null)) throw fail(`labelSize ${h.labelSize} but labels section ${h.labels ? 'present' : 'absent'}`);
  const sections: { name: string; offset: number; bytes: number }[] = h.levels.map((l) => {
    if (l.bytes !== N * C * l.resolution * l.resolution) {
      throw fail(`level ${l.resolution} has ${l.bytes} bytes, expected ${N}×${C}×${l.resolution}² = ${N * C * l.resolution ** 2}`);
    }
    return { name: `level ${l.resolution}`, ...l };
  });
  if (h.labels) {
    if (h.labels.bytes !== N * 4) throw fail(`labels have ${h.labels.bytes} bytes, expected ${N}×4 = ${N * 4}`);
    sections.push({ name: 'labels', ...h.labels });
  }
  let at = dataStart;
  for (const s of sections) {
    if (s.offset % ALIGN !== 0) throw fail(`${s.name} offset ${s.offset} is not a multiple of ${ALIGN}`);
    if (s.offset < at) throw fail(`${s.name} at offset ${s.offset} overlaps the previous section (ends at ${at})`);
    at = s.offset + s.bytes;
  }
  if (size < at) throw fail(`truncated: the header describes ${at} bytes but the file has ${size}`);
  if (size > at) throw fail(`${size - at} unexpected trailing bytes after the last section (ends at ${at})`);
}

class OpenDataset implements DatasetFile {
  private cache = new Map<number, Uint8Array>();
  private labelCache: Int32Array | null | undefined;

  constructor(
    readonly path: string,
    private fd: number,
    readonly header: DatasetHeader,
    private readonly dataStart: number,
    private readonly size: number,
  ) {}

  private read(offset: number, bytes: number): Uint8Array {
    if (this.fd < 0) throw new Error(`${this.path}: dataset is closed`);
    const out = new Uint8Array(bytes);
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(this.fd, out, done, bytes - done, offset + done);
      if (n <= 0) throw new Error(`${this.path}: truncated while reading ${bytes} bytes at offset ${offset}`);
      done += n;
    }
    return out;
  }

  level(resolution: number): Uint8Array {
    const entry = this.header.levels.find((l) => l.resolution === resolution);
    if (!entry) {
      throw new Error(`${this.path}: no level ${resolution}; levels are ${this.header.levels.map((l) => l.resolution).join(', ')}`);
    }
    let bytes = this.cache.get(resolution);
    if (!bytes) {
      bytes = this.read(entry.offset, entry.bytes);
      this.cache.set(resolution, bytes);
    }
    return bytes;
  }

  labels(): Int32Array | null {
    if (this.labelCache !== undefined) return this.labelCache;
    const section = this.header.labels;
    if (!section) return (this.labelCache = null);
    const bytes = this.read(section.offset, section.bytes);
    const view = new DataView(bytes.buffer);
    const labels = new Int32Array(this.header.count);
    for (let i = 0; i < labels.length; i++) {
      labels[i] = view.getInt32(i * 4, true);
      if (labels[i] < 0 || labels[i] >= this.header.labelSize) {
        throw new Error(`${this.path}: label ${labels[i]} of image ${i} is out of range 0..${this.header.labelSize - 1}`);
      }
    }
    return (this.labelCache = labels);
  }

  verify(): void {
    const chunk = Buffer.allocUnsafe(1 << 22);
    let crc = 0;
    for (let at = this.dataStart; at < this.size; ) {
      const n = fs.readSync(this.fd, chunk, 0, Math.min(chunk.length, this.size - at), at);
      if (n <= 0) throw new Error(`${this.path}: truncated at byte ${at}`);
      crc = zlib.crc32(chunk.subarray(0, n), crc);
      at += n;
    }
    const want = this.header.checksum.value;
    if (crc >>> 0 !== want) {
      throw new Error(`${this.path}: checksum mismatch: crc32 of the data is ${hex(crc >>> 0)}, header says ${hex(want)} (file corrupted)`);
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.cache.clear();
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
