/**
 * A dependency-free TensorBoard event-file writer (scalars and PNG images).
 *
 * File: `events.out.tfevents.<unix seconds>.<hostname>` of TFRecords:
 *   uint64 LE length | uint32 LE masked CRC32C(length bytes) | data | uint32 LE masked CRC32C(data)
 * with mask(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32). Each record is a
 * hand-encoded `tensorflow.Event` protobuf; the first one carries file_version "brain.Event:2".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------- CRC32C (Castagnoli)

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32C of the bytes (reflected polynomial 0x82F63B78); crc32c("123456789") = 0xE3069283. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The TFRecord masked CRC. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord frame around `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// ---------------------------------------------------------------- protobuf encoding

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

function varint(value: bigint | number): Buffer {
  let v = BigInt.asUintN(64, BigInt(value)); // negative int64/int32 → 10-byte two's complement, as protobuf does
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Buffer.from(bytes);
}

const key = (field: number, wire: number) => varint((field << 3) | wire);
const fieldVarint = (field: number, value: number | bigint) => Buffer.concat([key(field, WIRE_VARINT), varint(value)]);
const fieldBytes = (field: number, bytes: Uint8Array) =>
  Buffer.concat([key(field, WIRE_BYTES), varint(bytes.length), bytes]);
const fieldString = (field: number, s: string) => fieldBytes(field, Buffer.from(s, 'utf8'));
function fieldDouble(field: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  return Buffer.concat([key(field, WIRE_FIXED64), b]);
}
function fieldFloat(field: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  return Buffer.concat([key(field, WIRE_FIXED32), b]);
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
function encodeEvent(wallTime: number, step: number, body: { fileVersion?: string; summary?: Buffer }): Buffer {
  const parts = [fieldDouble(1, wallTime)];
  if (step !== 0) parts.push(fieldVarint(2, step));
  if (body.fileVersion !== undefined) parts.push(fieldString(3, body.fileVersion));
  if (body.summary !== undefined) parts.push(fieldBytes(5, body.summary));
  return Buffer.concat(parts);
}

// Summary { repeated Value value = 1; }
// Summary.Value { string tag = 1; float simple_value = 2; Image image = 4; }
// Summary.Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
function summaryOf(value: Buffer): Buffer {
  return fieldBytes(1, value);
}

// ---------------------------------------------------------------- PNG header

/** Width, height and TensorBoard colorspace (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) from a PNG's IHDR. */
export function pngInfo(png: Buffer): { width: number; height: number; colorspace: number } {
  const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!Buffer.isBuffer(png) || png.length < 26 || !png.subarray(0, 8).equals(SIGNATURE) || png.toString('latin1', 12, 16) !== 'IHDR') {
    throw new TypeError('Expected a PNG image (signature then IHDR chunk)');
  }
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const colorType = png[25];
  const colorspace = ({ 0: 1, 4: 2, 2: 3, 3: 3, 6: 4 } as Record<number, number>)[colorType];
  if (colorspace === undefined) throw new TypeError(`Expected a PNG colour type of 0, 2, 3, 4 or 6 but received ${colorType}`);
  return { width, height, colorspace };
}

// ---------------------------------------------------------------- writer

function checkTag(tag: string): void {
  if (typeof tag !== 'string' || tag.length === 0) throw new TypeError('Expected a non-empty string tag');
}

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step)) throw new RangeError(`Expected an integer step but received ${step}`);
}

/**
 * Appends events to a new event file in `logDir` (created if missing). Every call writes its record
 * straight to the open file descriptor (one write, no fsync), so a crashed run keeps what it logged;
 * `flush()` fsyncs, `close()` flushes and closes.
 */
export class TensorBoardWriter {
  readonly file: string;
  private fd: number | null;

  constructor(logDir: string) {
    fs.mkdirSync(logDir, { recursive: true });
    const base = path.join(logDir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}`);
    // Two writers started in the same second would share the name: never append to another run's file.
    let file = base;
    let fd: number | undefined;
    for (let n = 1; fd === undefined; n++) {
      try {
        fd = fs.openSync(file, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n > 1000) throw err;
        file = `${base}.${n}`;
      }
    }
    this.file = file;
    this.fd = fd;
    this.write(encodeEvent(Date.now() / 1000, 0, { fileVersion: 'brain.Event:2' }));
  }

  scalar(tag: string, value: number, step: number): void {
    checkTag(tag);
    checkStep(step);
    if (typeof value !== 'number') throw new TypeError(`Expected a number for scalar ${tag} but received ${typeof value}`);
    const v = Buffer.concat([fieldString(1, tag), fieldFloat(2, value)]);
    this.write(encodeEvent(Date.now() / 1000, step, { summary: summaryOf(v) }));
  }

  image(tag: string, png: Buffer, step: number): void {
    checkTag(tag);
    checkStep(step);
    const { width, height, colorspace } = pngInfo(png);
    const image = Buffer.concat([fieldVarint(1, height), fieldVarint(2, width), fieldVarint(3, colorspace), fieldBytes(4, png)]);
    const v = Buffer.concat([fieldString(1, tag), fieldBytes(4, image)]);
    this.write(encodeEvent(Date.now() / 1000, step, { summary: summaryOf(v) }));
  }

  flush(): void {
    if (this.fd !== null) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private write(event: Buffer): void {
    if (this.fd === null) throw new Error(`TensorBoardWriter for ${this.file} is closed`);
    const record = tfRecord(event);
    let written = 0;
    while (written < record.length) written += fs.writeSync(this.fd, record, written, record.length - written);
  }
}
