// Small training datasets for tests, written as PNG folders and prepared like a user's.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { prepareDataset } from '../../lib/dataset';

/**
 * `count` RGB images of uniform noise (bytes from an LCG started at `seed`: the same seed gives the same
 * images), prepared into `<dir>/noise-<seed>.pgds` at `resolution`. Returns the .pgds path.
 */
export async function noiseDataset(dir: string, o: { count: number; resolution: number; seed: number }): Promise<string> {
  const images = path.join(dir, `noise-${o.seed}`);
  fs.mkdirSync(images, { recursive: true });
  let s = o.seed;
  for (let i = 0; i < o.count; i++) {
    const px = Buffer.alloc(o.resolution * o.resolution * 3);
    for (let j = 0; j < px.length; j++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      px[j] = s >>> 24;
    }
    await sharp(px, { raw: { width: o.resolution, height: o.resolution, channels: 3 } }).png().toFile(path.join(images, `${i}.png`));
  }
  const data = path.join(dir, `noise-${o.seed}.pgds`);
  await prepareDataset({ input: images, output: data, resolution: o.resolution });
  return data;
}
