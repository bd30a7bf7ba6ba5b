/**
 * An installed `emoji-datasource-<set>` npm package: every emoji (and skin-tone variation) that
 * has an image in `img/<set>/64/`, optionally labelled by an emoji.json field.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadImage, type ImageSpec } from '../image';
import { sortLabelNames, type Source } from './source';

const PACKAGE = /^emoji-datasource-([a-z]+)$/;
export const EMOJI_LABEL_FIELDS = ['category', 'subcategory'] as const;
type LabelField = (typeof EMOJI_LABEL_FIELDS)[number];

export function isEmojiPackageName(input: string): boolean {
  return PACKAGE.test(input);
}

interface EmojiEntry {
  image?: string;
  category?: string;
  subcategory?: string;
  skin_variations?: Record<string, EmojiEntry>;
  [key: string]: unknown;
}

/** The package folder, resolved like `require` from the working directory, then from this project. */
function resolvePackage(name: string): string {
  const projectRoot = path.resolve(__dirname, '..', '..', '..');
  try {
    return path.dirname(require.resolve(`${name}/emoji.json`, { paths: [process.cwd(), projectRoot] }));
  } catch {
    throw new Error(`Package ${name} is not installed (npm install ${name}), and no file or folder of that name exists`);
  }
}

export function emojiSource(name: string, spec: ImageSpec, labelField: string | undefined): Source {
  const set = PACKAGE.exec(name)![1];
  if (labelField !== undefined && !(EMOJI_LABEL_FIELDS as readonly string[]).includes(labelField)) {
    throw new Error(`Expected one of ${EMOJI_LABEL_FIELDS.join(', ')} for labels but received ${JSON.stringify(labelField)}`);
  }
  const root = resolvePackage(name);
  const folder = path.join(root, 'img', set, '64');
  const entries = JSON.parse(fs.readFileSync(path.join(root, 'emoji.json'), 'utf8')) as EmojiEntry[];
  const flag = `has_img_${set}`;
  const found: { image: string; label: string }[] = [];
  const seen = new Set<string>();
  const add = (e: EmojiEntry, parent: EmojiEntry) => {
    if (!e.image || e[flag] !== true || seen.has(e.image)) return;
    seen.add(e.image);
    // Skin-tone variations carry no category of their own: they inherit their base emoji's.
    found.push({ image: e.image, label: labelField ? String(parent[labelField as LabelField] ?? '') : '' });
  };
  for (const e of entries) {
    add(e, e);
    for (const v of Object.values(e.skin_variations ?? {})) add(v, e);
  }
  found.sort((a, b) => (a.image < b.image ? -1 : a.image > b.image ? 1 : 0));
  const labelNames = labelField ? sortLabelNames(found.map((f) => f.label)) : [];
  const index = new Map(labelNames.map((n, i) => [n, i]));
  return {
    description: `${name}@${readVersion(root)} img/${set}/64${labelField ? ` labels ${labelField}` : ''}`,
    items: found.map((f) => ({ name: f.image, label: labelField ? index.get(f.label)! : null })),
    labelNames,
    ignored: 0,
    load: (i) => loadImage(path.join(folder, found[i].image), spec),
  };
}

function readVersion(root: string): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}
