// Conditional training end to end: a labelled dataset (labels CSV), G and D conditioned on 3
// classes, the auxiliary classification loss reported and finite, class-conditional samples.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { prepareDataset } from '../lib/dataset';
import { Tensor, randn } from '../lib/tensor';
import { Trainer } from '../lib/train/trainer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-conditional-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a conditional model trains on labelled data and samples per class', async (t) => {
  const images = path.join(dir, 'images');
  fs.mkdirSync(images);
  const rows: string[] = ['file,label'];
  const colours = { red: [220, 30, 30], green: [30, 200, 40], blue: [30, 40, 220] } as const;
  let i = 0;
  for (const [name, rgb] of Object.entries(colours)) {
    for (let k = 0; k < 8; k++, i++) {
      const px = Buffer.alloc(8 * 8 * 3);
      for (let j = 0; j < px.length; j++) px[j] = Math.max(0, Math.min(255, rgb[j % 3] + ((j * 37 + k * 11) % 41) - 20));
      const file = `${name}-${k}.png`;
      await sharp(px, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(path.join(images, file));
      rows.push(`${file},${name}`);
    }
  }
  fs.writeFileSync(path.join(dir, 'labels.csv'), rows.join('\n') + '\n');
  const data = path.join(dir, 'data.pgds');
  const report = await prepareDataset({ input: images, output: data, resolution: 8, labels: path.join(dir, 'labels.csv') });
  t.is(report.labelSize, 3);

  const trainer = await Trainer.create({
    data,
    network: { preset: 'small', resolution: 8, fmapMax: 16, latentSize: 16, labelSize: 3 },
    schedule: { minibatch: 8, stableKimg: 0.032, fadeKimg: 0.032 },
    seed: 5,
  });
  const ticks: number[] = [];
  const last = await trainer.train({ totalImages: 96, tickImages: 8, onProgress: (p) => p.tickSteps > 0 && ticks.push(p.labelLoss) });
  t.log(`12 conditional steps: label loss per step ${ticks.map((v) => v.toFixed(3)).join(' ')}; last D loss ${last.dLoss.toFixed(3)}`);
  t.true(last.finished && last.tickSteps > 0 && Number.isFinite(last.dLoss));
  t.is(ticks.length, 12);
  for (const v of ticks) t.true(Number.isFinite(v) && v > 0, `label loss ${v}`);

  const z = randn([3, 16], { seed: 1 });
  const byIndex = trainer.sample(z, { labels: new Tensor(new Int32Array([0, 1, 2]), [3], 'int32') });
  const oneHot = trainer.sample(z, { labels: new Tensor(new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]), [3, 3], 'float32') });
  t.deepEqual(byIndex.shape, [3, 3, 8, 8]);
  t.deepEqual([...byIndex.data], [...oneHot.data], 'class indices and one-hot labels give the same samples');
  const otherClass = trainer.sample(z, { labels: new Tensor(new Int32Array([1, 2, 0]), [3], 'int32') });
  t.notDeepEqual([...otherClass.data], [...byIndex.data], 'the label changes the sample');

  t.throws(() => trainer.sample(z), { message: /conditional: pass labels/ });
  t.throws(() => trainer.sample(z, { labels: new Tensor(new Int32Array([0, 1, 3]), [3], 'int32') }), { message: /class indices from 0 to 2/ });
  await t.throwsAsync(
    Trainer.create({ data, network: { preset: 'small', resolution: 8, fmapMax: 16, latentSize: 16, labelSize: 5 } }),
    { message: /conditional on 5 classes but the dataset .* has 3 labels/ },
  );
});
