/** Options of `prepareDataset` and their validation. */

export type Fit = 'crop' | 'pad' | 'stretch';
export const FITS: readonly Fit[] = ['crop', 'pad', 'stretch'];

export interface PrepareOptions {
  /** A folder of images, an IDX `*-images-idx3-ubyte[.gz]` file, or an installed `emoji-datasource-<set>` package name. */
  input: string;
  /** The `.pgds` file to write. */
  output: string;
  /** Final resolution R (a power of two from 4 to 1024); levels R, R/2, …, 4 are stored. */
  resolution: number;
  /** How a non-square image becomes square (default `crop`: centre crop). */
  fit?: Fit;
  /** 1 (grayscale) or 3 (RGB). Default 3, but 1 for IDX input. */
  channels?: 1 | 3;
  /** `#rrggbb` (or `#rgb`) used to flatten transparency and for `pad` borders. Default `#ffffff`. */
  background?: string;
  /**
   * Folder input: a CSV file of `path-or-file-name,label` lines.
   * Emoji input: an emoji.json field (`category` or `subcategory`).
   * IDX input: an explicit `*-labels-idx1-ubyte[.gz]` file (otherwise the one beside the images is used).
   */
  labels?: string;
  /** Throw on the first unreadable or too small image instead of skipping it. */
  strict?: boolean;
  /** Images whose shorter side is below this many pixels are skipped (default 8). */
  minSize?: number;
}

export interface ResolvedOptions {
  input: string;
  output: string;
  resolution: number;
  fit: Fit;
  channels: 1 | 3 | undefined;
  background: Rgb;
  backgroundText: string;
  labels: string | undefined;
  strict: boolean;
  minSize: number;
}

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

export function expected(what: string, option: string, value: unknown): Error {
  return new Error(`Expected ${what} for ${option} but received ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'nothing';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function parseColour(text: string): Rgb | null {
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(text.trim());
  if (!m) return null;
  let hex = m[1];
  if (hex.length === 3) hex = hex.replace(/./g, (c) => c + c);
  return {
    r: parseInt(hex.slice(0, 2), 16),
    g: parseInt(hex.slice(2, 4), 16),
    b: parseInt(hex.slice(4, 6), 16),
  };
}

export function resolveOptions(options: PrepareOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
  const { input, output, resolution } = options;
  if (typeof input !== 'string' || input.length === 0) throw expected('a path or package name', 'input', input);
  if (typeof output !== 'string' || output.length === 0) throw expected('a file path', 'output', output);
  if (typeof resolution !== 'number' || !isPowerOfTwo(resolution) || resolution < 4 || resolution > 1024) {
    throw expected('a power of two from 4 to 1024', 'resolution', resolution);
  }
  const fit = options.fit ?? 'crop';
  if (!FITS.includes(fit)) throw expected(`one of ${FITS.join(', ')}`, 'fit', fit);
  const channels = options.channels;
  if (channels !== undefined && channels !== 1 && channels !== 3) throw expected('1 or 3', 'channels', channels);
  const backgroundText = options.background ?? '#ffffff';
  const background = typeof backgroundText === 'string' ? parseColour(backgroundText) : null;
  if (!background) throw expected('a colour #rrggbb', 'background', backgroundText);
  const labels = options.labels;
  if (labels !== undefined && (typeof labels !== 'string' || labels.length === 0)) {
    throw expected('a CSV path or emoji.json field name', 'labels', labels);
  }
  const strict = options.strict ?? false;
  if (typeof strict !== 'boolean') throw expected('true or false', 'strict', strict);
  const minSize = options.minSize ?? 8;
  if (typeof minSize !== 'number' || !Number.isInteger(minSize) || minSize < 1) {
    throw expected('a positive integer', 'minSize', minSize);
  }
  return { input, output, resolution, fit, channels, background, backgroundText, labels, strict, minSize };
}
