/** A folder of images (recursive), optionally labelled by a CSV file. */
import fs from 'node:fs';
import path from 'node:path';
import { loadImage, type ImageSpec } from '../image';
import { listNames, sortLabelNames, type Source } from './source';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.heic', '.heif']);

/** All files under `root`, as POSIX-style relative paths in sorted order. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    for (const e of entries) {
      // Hidden files (.DS_Store, ._foo.jpg resource forks) are never dataset images.
      if (e.name.startsWith('.')) continue;
      const full = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const st = fs.statSync(full, { throwIfNoEntry: false });
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) walk(full, r);
      else if (isFile) out.push(r);
    }
  };
  walk(root, '');
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function folderSource(root: string, spec: ImageSpec, labelsCsv: string | undefined): Source {
  const files = listFiles(root);
  const images = files.filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase()));
  let labelNames: string[] = [];
  let labels: (number | null)[] = images.map(() => null);
  if (labelsCsv !== undefined) {
    const byImage = matchLabels(readLabelsCsv(labelsCsv), images, labelsCsv);
    labelNames = sortLabelNames(byImage);
    const index = new Map(labelNames.map((n, i) => [n, i]));
    labels = byImage.map((l) => index.get(l)!);
  }
  return {
    description: `folder ${path.resolve(root)}${labelsCsv ? ` with labels ${path.resolve(labelsCsv)}` : ''}`,
    items: images.map((name, i) => ({ name, label: labels[i] })),
    labelNames,
    ignored: files.length - images.length,
    load: (i) => loadImage(path.join(root, images[i]), spec),
  };
}

/** Rows of a two-column CSV; fields may be double-quoted (with "" for a quote). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  for (const line of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') {
          field += '"';
          i++;
        } else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') {
        fields.push(field);
        field = '';
      } else field += ch;
    }
    fields.push(field);
    rows.push(fields.map((f) => f.trim()));
  }
  return rows;
}

function readLabelsCsv(file: string): string[][] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read labels CSV ${file}: ${(e as Error).message}`);
  }
  const rows = parseCsv(text);
  rows.forEach((row, i) => {
    if (row.length < 2 || row[0] === '' || row[1] === '') {
      throw new Error(`${file}: line ${i + 1} is not "path,label": ${JSON.stringify(row.join(','))}`);
    }
  });
  if (rows.length === 0) throw new Error(`${file}: no labels`);
  return rows;
}

/**
 * The label of each image. A CSV key is a relative path or a bare file name (when that name is
 * unique in the folder). The first row is a header when its key names no image.
 */
function matchLabels(rows: string[][], images: string[], file: string): string[] {
  const byPath = new Map<string, string>();
  const byBase = new Map<string, string>();
  const baseCount = new Map<string, number>();
  for (const img of images) {
    const base = path.posix.basename(img);
    baseCount.set(base, (baseCount.get(base) ?? 0) + 1);
  }
  const known = (key: string) => images.includes(key) || baseCount.has(key);
  const data = rows.length > 0 && !known(normalise(rows[0][0])) ? rows.slice(1) : rows;
  for (const [rawKey, label] of data) {
    const key = normalise(rawKey);
    const target = key.includes('/') ? byPath : byBase;
    const previous = target.get(key);
    if (previous !== undefined && previous !== label) throw new Error(`${file}: ${rawKey} has two labels, ${previous} and ${label}`);
    target.set(key, label);
  }
  const missing: string[] = [];
  const out = images.map((img) => {
    const base = path.posix.basename(img);
    let label = byPath.get(img);
    if (label === undefined && !img.includes('/')) label = byBase.get(img);
    if (label === undefined && baseCount.get(base) === 1) label = byBase.get(base);
    if (label === undefined) missing.push(img);
    return label ?? '';
  });
  if (missing.length > 0) {
    throw new Error(`${file} has no label for ${missing.length} image(s): ${listNames(missing)}`);
  }
  return out;
}

function normalise(key: string): string {
  return key.replace(/\\/g, '/').replace(/^\.\//, '');
}
