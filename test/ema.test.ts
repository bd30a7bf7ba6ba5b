// The EMA generator (native/train/trainer.cpp): after every step G_ema = lerp(G_ema, G, 1 − β) for
// every parameter. The trainer skips the lerp for parameters it knows equal their average (untouched
// since the last time both were equal, read from the tensors' version counters); this checks the
// result against the full update computed here, parameter by parameter, including the layers not in
// use yet and a layer written from outside (setParameters) between steps.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NamedTensors } from '../lib/safetensors';
import { Tensor } from '../lib/tensor';
import { Trainer } from '../lib/train/trainer';
import { noiseDataset } from './helpers/datasets';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-ema-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const BETA = 0.9;

/** Worst relative error of ema' against lerp(ema, g, 1 − β), over all parameters. */
function emaError(emaBefore: NamedTensors, g: NamedTensors, emaAfter: NamedTensors) {
  let worst = { err: 0, name: '' };
  for (const [name, e0] of emaBefore) {
    const a = e0.data as Float32Array, b = g.get(name)!.data as Float32Array, out = emaAfter.get(name)!.data as Float32Array;
    let diff = 0, scale = 0;
    for (let i = 0; i < a.length; i++) {
      const want = a[i] + (1 - BETA) * (b[i] - a[i]);
      diff = Math.max(diff, Math.abs(out[i] - want));
      scale = Math.max(scale, Math.abs(want));
    }
    const err = diff / Math.max(scale, 1e-30);
    if (err > worst.err) worst = { err, name };
  }
  return worst;
}

const differs = (a: Tensor, b: Tensor) => (a.data as Float32Array).some((v, i) => v !== (b.data as Float32Array)[i]);

test('G_ema follows lerp(G_ema, G, 1 − β) for every parameter, used, unused or written between steps', async (t) => {
  const data = await noiseDataset(dir, { count: 16, resolution: 16, seed: 5 });
  const trainer = await Trainer.create({
    data,
    network: { preset: 'small', resolution: 16, fmapMax: 32, latentSize: 32 },
    schedule: { minibatch: 8, learningRate: 0.01 },
    ema: { beta: BETA, halfLifeKimg: 0 },
    seed: 2,
  });
  const unused = 'b16x16_conv1.weight'; // not in use at 8²
  for (let step = 0; step < 4; step++) {
    if (step === 2) {
      // A write from outside: the trainer must notice it and average this layer again.
      const g = trainer.parameters('generator');
      const w = g.get(unused)!;
      const moved = new Float32Array((w.data as Float32Array).map((v, i) => v + 0.5 * Math.sin(i)));
      trainer.setParameters('generator', new Map([...g, [unused, new Tensor(moved, w.shape, 'float32')]]));
    }
    const emaBefore = trainer.parameters('generatorEma');
    const gBefore = trainer.parameters('generator');
    await trainer.trainPhase({ resolution: 8, phase: step < 2 ? 'stable' : 'fade', images: 8, tickImages: 8 });
    const g = trainer.parameters('generator');
    const emaAfter = trainer.parameters('generatorEma');
    const worst = emaError(emaBefore, g, emaAfter);
    const changedG = [...g].filter(([k, v]) => differs(v, gBefore.get(k)!)).length;
    const changedEma = [...emaAfter].filter(([k, v]) => differs(v, emaBefore.get(k)!)).map(([k]) => k);
    t.log(`step ${step}: ${changedG} of ${g.size} G tensors changed, ${changedEma.length} G_ema tensors moved; worst relative error ${worst.err.toExponential(2)} (${worst.name || '–'})`);
    t.true(worst.err < 1e-6, `step ${step}: G_ema is not the EMA of G (${worst.name}: ${worst.err})`);
    t.true(changedG > 0 && changedEma.length > 0, 'the step trained and averaged');
    if (step >= 2) t.true(changedEma.includes(unused), 'the layer written from outside is averaged again');
    else t.false(changedEma.includes(unused), 'an untouched layer equals its average and stays put');
  }
});
