/** What every input kind (folder, IDX, emoji package) provides to prepare(). */

export interface SourceItem {
  /** Shown in progress and in the skipped list: a path relative to the input, or a file name. */
  name: string;
  /** Class index into Source.labelNames, or null when the source is unlabelled. */
  label: number | null;
}

export interface Source {
  /** Recorded in the header's `source` field. */
  description: string;
  /** Candidate images in dataset order (already sorted, so the output is deterministic). */
  items: SourceItem[];
  /** Class names (sorted); empty when unlabelled. */
  labelNames: string[];
  /** Files that were not considered images (e.g. .txt in a folder). */
  ignored: number;
  /** Decodes item `index` into an R×R CHW uint8 image; throws BadImageError for an unusable image. */
  load(index: number): Promise<Uint8Array>;
}

/**
 * Sorted class names for a set of label strings: numerically when every label is an integer
 * (so "10" comes after "9"), otherwise by code unit order (locale independent).
 */
export function sortLabelNames(labels: Iterable<string>): string[] {
  const names = [...new Set(labels)];
  if (names.length > 0 && names.every((n) => /^-?\d+$/.test(n))) return names.sort((a, b) => Number(a) - Number(b));
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** "a, b, c and 7 more": error messages name the files without flooding the terminal. */
export function listNames(names: string[], max = 10): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
