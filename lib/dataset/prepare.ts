/** prepareDataset: any supported input → a `.pgds` file. */
import fs from 'node:fs';
import path from 'node:path';
import { DatasetWriter } from './format';
import { BadImageError, type ImageSpec } from './image';
import { resolveOptions, type PrepareOptions } from './options';
import { emojiSource, isEmojiPackageName } from './sources/emoji';
import { folderSource } from './sources/folder';
import { idxSource, isIdxImages } from './sources/idx';

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface PrepareReport {
  output: string;
  count: number;
  resolution: number;
  channels: 1 | 3;
  labelSize: number;
  skipped: SkippedFile[];
  /** Files in the input folder that are not images by their extension. */
  ignored: number;
  seconds: number;
}

export type ProgressCallback = (done: number, total: number, file?: string) => void;

/** Images decoded at once: enough to keep sharp's threads busy, few enough to bound memory. */
const CONCURRENCY = 4;
const MIN_IMAGES = 4;

export async function prepareDataset(options: PrepareOptions, onProgress?: ProgressCallback): Promise<PrepareReport> {
  const started = process.hrtime.bigint();
  const o = resolveOptions(options);
  const kind = inputKind(o.input);
  // MNIST-style digits are grayscale by nature; everything else defaults to RGB.
  const channels = o.channels ?? (kind === 'idx' ? 1 : 3);
  const spec: ImageSpec = { resolution: o.resolution, channels, fit: o.fit, background: o.background, minSize: o.minSize };
  const source =
    kind === 'folder' ? folderSource(o.input, spec, o.labels)
    : kind === 'idx' ? idxSource(o.input, o.resolution, channels, o.labels)
    : emojiSource(o.input, spec, o.labels);
  const output = path.resolve(o.output);
  if (path.resolve(o.input) === output) throw new Error(`The output ${o.output} would overwrite the input`);

  const total = source.items.length;
  if (total === 0) throw new Error(`No images found in ${o.input}${source.ignored ? ` (${source.ignored} non-image files ignored)` : ''}`);
  const writer = new DatasetWriter(output, { resolution: o.resolution, channels, source: source.description });
  const skipped: SkippedFile[] = [];
  try {
    let done = 0;
    await orderedMap(total, CONCURRENCY, (i) => source.load(i).then(
      (image) => ({ image, error: undefined }),
      (error: unknown) => ({ image: undefined, error }),
    ), (i, { image, error }) => {
      const item = source.items[i];
      if (image) writer.append(image, item.label);
      else if (error instanceof BadImageError && !o.strict) skipped.push({ file: item.name, reason: error.message });
      else if (error instanceof BadImageError) throw new Error(`${item.name}: ${error.message} (strict mode)`);
      else throw error;
      onProgress?.(++done, total, item.name);
    });
    if (writer.size < MIN_IMAGES) {
      throw new Error(
        `Only ${writer.size} usable image(s) in ${o.input}, at least ${MIN_IMAGES} are needed` +
          (skipped.length ? `; skipped: ${skipped.map((s) => `${s.file} (${s.reason})`).join(', ')}` : ''),
      );
    }
    const header = writer.finish({ labelNames: source.labelNames });
    return {
      output,
      count: header.count,
      resolution: header.resolution,
      channels: header.channels,
      labelSize: header.labelSize,
      skipped,
      ignored: source.ignored,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } finally {
    writer.abort();
  }
}

function inputKind(input: string): 'folder' | 'idx' | 'emoji' {
  const stat = fs.statSync(input, { throwIfNoEntry: false });
  if (stat?.isDirectory()) return 'folder';
  if (stat?.isFile()) {
    if (isIdxImages(input)) return 'idx';
    throw new Error(
      `Input ${input} is a file; expected a folder of images, an IDX *-images-idx3-ubyte[.gz] file or an emoji-datasource-<set> package name`,
    );
  }
  if (!stat && isEmojiPackageName(input)) return 'emoji';
  throw new Error(`Input not found: ${input} (no such file or folder)`);
}

/**
 * Runs `work` on 0..count-1 with at most `concurrency` in flight, and hands results to `consume`
 * strictly in index order, so the dataset order is the sorted file order whatever finishes first.
 * `work` must not reject (wrap failures into the result). A throwing `consume` stops the run.
 */
export async function orderedMap<T>(
  count: number,
  concurrency: number,
  work: (i: number) => Promise<T>,
  consume: (i: number, result: T) => void,
): Promise<void> {
  const pending: Promise<T>[] = [];
  let next = 0;
  while (next < count && pending.length < concurrency) pending.push(work(next++));
  for (let i = 0; i < count; i++) {
    const result = await pending.shift()!;
    if (next < count) pending.push(work(next++));
    try {
      consume(i, result);
    } catch (e) {
      // Let in-flight decodes settle so no sharp work outlives the call.
      await Promise.allSettled(pending);
      throw e;
    }
  }
}
