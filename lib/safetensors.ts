// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a
// JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
// Readable by Python's `safetensors`; no pickles, no framework version lock-in.
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, numel, type DType, type TypedArrayOf } from './tensor';

const TO_FILE: Record<DType, string> = { float32: 'F32', float64: 'F64', uint8: 'U8', int32: 'I32', int64: 'I64' };
const FROM_FILE: Record<string, { dtype: DType; bytes: number; make: (b: ArrayBuffer) => TypedArrayOf<DType> }> = {
  F32: { dtype: 'float32', bytes: 4, make: (b) => new Float32Array(b) },
  F64: { dtype: 'float64', bytes: 8, make: (b) => new Float64Array(b) },
  U8: { dtype: 'uint8', bytes: 1, make: (b) => new Uint8Array(b) },
  I32: { dtype: 'int32', bytes: 4, make: (b) => new Int32Array(b) },
  I64: { dtype: 'int64', bytes: 8, make: (b) => new BigInt64Array(b) },
};
const MAX_HEADER = 100 * 1024 * 1024;

export type NamedTensors = Map<string, Tensor>;

export interface SafetensorsFile {
  tensors: NamedTensors;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(file: string, problem: string) {
    super(`${file} is not a usable safetensors file: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

/** Writes atomically: a temp file beside the target, fsynced, then renamed over it. */
export function writeSafetensors(file: string, tensors: NamedTensors, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;  // keeps the data 8-byte aligned, as the reference writer does
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(json.length));

  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(temp, 'w');
  try {
    fs.writeSync(fd, lengthBytes);
    fs.writeSync(fd, json);
    for (const t of tensors.values()) fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
  const dirFd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

export function readSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new SafetensorsError(file, `it cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length < 8) throw new SafetensorsError(file, `it holds only ${bytes.length} bytes (truncated?)`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (headerLength > MAX_HEADER || headerLength > bytes.length - 8) {
    throw new SafetensorsError(file, `its header length ${headerLength} exceeds the file (truncated, or not safetensors)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    throw new SafetensorsError(file, 'its header is not JSON (not a safetensors file?)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(file, 'its header is not a JSON object');
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors: NamedTensors = new Map();
  let end = 0;
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    const kind = dtype ? FROM_FILE[dtype] : undefined;
    if (!kind) throw new SafetensorsError(file, `tensor '${name}' has dtype ${dtype}, which progan does not read (F32, F64, U8, I32, I64)`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}' has an invalid shape`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !(offsets[0] <= offsets[1])) {
      throw new SafetensorsError(file, `tensor '${name}' has invalid data_offsets`);
    }
    const [begin, stop] = offsets;
    if (stop - begin !== numel(shape) * kind.bytes) {
      throw new SafetensorsError(file, `tensor '${name}' covers ${stop - begin} bytes but its shape needs ${numel(shape) * kind.bytes}`);
    }
    if (stop > dataLength) {
      throw new SafetensorsError(file, `tensor '${name}' ends at byte ${stop} of a ${dataLength}-byte data section (truncated)`);
    }
    end = Math.max(end, stop);
    const copy = bytes.buffer.slice(bytes.byteOffset + dataStart + begin, bytes.byteOffset + dataStart + stop);
    tensors.set(name, new Tensor(kind.make(copy as ArrayBuffer), shape, kind.dtype));
  }
  if (end !== dataLength) throw new SafetensorsError(file, `${dataLength - end} bytes follow the last tensor (tampered or corrupt)`);
  return { tensors, metadata };
}
