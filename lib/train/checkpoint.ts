// Checkpoints: safetensors holding G, D, G_ema, both Adam states, the RNG and sampler states,
// with the resolved options, schedule position and versions in the metadata. Written
// atomically (lib/safetensors.ts); a CRC over all tensor bytes catches tampering.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { readSafetensors, writeSafetensors, type NamedTensors } from '../safetensors';
import { resolveNetworkOptions } from '../options';
import { DEVICE_DEFAULTS, type TrainingConfig } from './options';

export const CHECKPOINT_FORMAT = 'progan-checkpoint';
export const CHECKPOINT_VERSION = '1';

export interface CheckpointContents {
  options: TrainingConfig;
  scalars: Record<string, number>;
  tensors: NamedTensors;
  versions: { progan: string; torch: string };
}

export class CheckpointError extends Error {
  constructor(file: string, problem: string) {
    super(`Cannot use the checkpoint ${file}: ${problem}`);
    this.name = 'CheckpointError';
  }
}

export function proganVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}

function tensorChecksum(tensors: NamedTensors): string {
  let crc = 0;
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    crc = zlib.crc32(name, crc);
    crc = zlib.crc32(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), crc);
  }
  return crc.toString(16).padStart(8, '0');
}

export function writeCheckpoint(file: string, c: CheckpointContents): void {
  writeSafetensors(file, c.tensors, {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_VERSION,
    options: JSON.stringify(c.options),
    scalars: JSON.stringify(c.scalars),
    versions: JSON.stringify(c.versions),
    checksum: tensorChecksum(c.tensors),
    created: new Date().toISOString(),
  });
}

// Options that did not exist when a checkpoint was written get their defaults: the network's from
// its resolver (a resolved network config resolves to itself), the device options' from
// DEVICE_DEFAULTS.
function withCurrentDefaults(o: TrainingConfig): TrainingConfig {
  return {
    ...o,
    network: resolveNetworkOptions(o.network),
    device: o.device ?? DEVICE_DEFAULTS.device,
    cudaGraphs: o.cudaGraphs ?? DEVICE_DEFAULTS.cudaGraphs,
    deterministic: o.deterministic ?? DEVICE_DEFAULTS.deterministic,
  };
}

export function readCheckpoint(file: string): CheckpointContents {
  if (!fs.existsSync(file)) throw new CheckpointError(file, 'the file does not exist');
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(file, `it is a safetensors file but not a progan checkpoint (format: ${metadata.format ?? 'none'})`);
  }
  if (metadata.formatVersion !== CHECKPOINT_VERSION) {
    throw new CheckpointError(file, `checkpoint format ${metadata.formatVersion} is not supported by this progan (reads ${CHECKPOINT_VERSION})`);
  }
  if (metadata.checksum !== tensorChecksum(tensors)) {
    throw new CheckpointError(file, 'its tensor data does not match its checksum (corrupt or modified)');
  }
  let contents: CheckpointContents;
  try {
    contents = {
      options: JSON.parse(metadata.options) as TrainingConfig,
      scalars: JSON.parse(metadata.scalars) as Record<string, number>,
      versions: JSON.parse(metadata.versions) as { progan: string; torch: string },
      tensors,
    };
  } catch {
    throw new CheckpointError(file, 'its metadata is not valid JSON (modified?)');
  }
  try {
    return { ...contents, options: withCurrentDefaults(contents.options) };
  } catch (e) {
    throw new CheckpointError(file, `its options do not fit this progan: ${(e as Error).message}`);
  }
}
