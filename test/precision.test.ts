// precision: 'bfloat16' — convolutions and dense layers multiply in bfloat16 while everything else
// stays float32. Judged against the float64 path (itself checked against the independent PyTorch
// reference in networks.test.ts):
//   1. G and D outputs (< 1e-1) and every gradient (< 0.35) land within bfloat16 accuracy of the
//      float64 truth, normwise, and measurably off float32 accuracy (> 1e-4: the bfloat16 path really
//      ran; float32 sits near 1e-6). The gradient bound is wide because bfloat16 is: on these random
//      N(0, 1) networks, gradient errors grow layer by layer going backwards (pixel norm's backward
//      cancels), and PyTorch's own torch.autocast(bfloat16) measured 3–7 % on the same kind of
//      network (G, 8², fp64 truth), this scheme in plain PyTorch 4–9 %. The worst output, D's at 32²,
//      is 4.3e-2 to 6.3e-2 depending only on which layers use fused-scale kernels (fusedScale false
//      6.2e-2, true 6.3e-2): rounding order, which moves it by half again, hence 1e-1.
//   2. Training in bfloat16 from the same seed and data follows the float32 run: the first step's
//      losses within 2e-2, 30 steps across a fade all finite, no update skipped.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNetworks, randn, type NamedTensors, type Tensor } from '../lib/index';
import { toFloat64 } from './helpers/compare';
import { Trainer, type Progress } from '../lib/train/trainer';
import { noiseDataset } from './helpers/datasets';

/** ‖ours − ref‖₂ / ‖ref‖₂: bfloat16 rounding spreads over every element, so the normwise error is the
 * meaningful measure; the elementwise max over max|ref| also counts cancellation within one sum. */
function normwiseError(ours: Tensor, ref: Tensor): number {
  if (ours.shape.join() !== ref.shape.join()) return Infinity;
  const a = ours.data as Float32Array;
  const b = ref.data as Float64Array;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += b[i] ** 2;
  }
  const e = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
  return Number.isNaN(e) ? Infinity : e;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-precision-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));


test('bfloat16 networks: outputs and gradients within bfloat16 accuracy of float64', (t) => {
  const network = { preset: 'small' as const, resolution: 32, fmapMax: 64, latentSize: 64 };
  const bf = createNetworks({ ...network, precision: 'bfloat16', seed: 3 });
  const truth = createNetworks({ ...network, seed: 3 });
  truth.setDtype('float64');
  const randomize = (weights: NamedTensors, seed: number) => {
    let i = 0;
    return new Map([...weights].map(([k, w]) => [k, randn(w.shape, { seed: seed + i++ })]));
  };
  // Random biases too, so every term of the layers is exercised.
  const g = randomize(bf.generator.parameters(), 100);
  const d = randomize(bf.discriminator.parameters(), 200);
  bf.generator.setParameters(g);
  bf.discriminator.setParameters(d);
  truth.generator.setParameters(new Map([...g].map(([k, v]) => [k, toFloat64(v)])));
  truth.discriminator.setParameters(new Map([...d].map(([k, v]) => [k, toFloat64(v)])));

  const rows: string[] = [];
  let worst = { err: 0, where: '' };
  let worstOutput = { err: 0, where: '' };
  let least = { err: Infinity, where: '' };
  for (const [resolution, alpha] of [[8, 1], [16, 0.4], [32, 1]] as const) {
    const n = 8;
    const latents = randn([n, 64], { seed: resolution });
    const images = randn([n, 3, resolution, resolution], { seed: resolution + 1 });
    const gradG = randn([n, 3, resolution, resolution], { seed: resolution + 2 });
    const gradD = randn([n, 1], { seed: resolution + 3 });
    const opts = { resolution, alpha };
    const pairs: [string, Tensor, Tensor][] = [];
    for (const [name, input, grad] of [['G', latents, gradG], ['D', images, gradD]] as const) {
      const net = name === 'G' ? 'generator' : 'discriminator';
      const ours = bf[net].forwardBackward(input, grad, opts);
      const ref = truth[net].forwardBackward(toFloat64(input), toFloat64(grad), opts);
      pairs.push([`${name} output`, ours.output, ref.output], [`${name} input grad`, ours.inputGrad, ref.inputGrad]);
      for (const [k, v] of ours.gradients) {
        // Parameters of blocks not in use at this resolution have zero gradients on both sides.
        const r = ref.gradients.get(k)!;
        if ((r.data as Float64Array).some((x) => x !== 0)) pairs.push([`${name} ∂${k}`, v, r]);
      }
    }
    let resWorst = { err: 0, where: '' };
    for (const [where, a, b] of pairs) {
      const err = normwiseError(a, b);
      if (!(err <= resWorst.err)) resWorst = { err, where };
      if (!(err <= worst.err)) worst = { err, where: `${resolution}² ${where}` };
      if (where.endsWith('output') && !(err <= worstOutput.err)) worstOutput = { err, where: `${resolution}² ${where}` };
      if (where.endsWith('output') && !(err >= least.err)) least = { err, where: `${resolution}² ${where}` };
    }
    rows.push(`${resolution}² α ${alpha}: ${pairs.length} tensors, worst ${resWorst.err.toExponential(2)} (${resWorst.where})`);
  }
  t.log(rows.join('\n'));
  t.log(
    `bfloat16 vs float64, normwise: outputs worst ${worstOutput.err.toExponential(2)} (${worstOutput.where}); ` +
      `least ${least.err.toExponential(2)} (${least.where}); all tensors worst ${worst.err.toExponential(2)} (${worst.where})`,
  );
  t.true(worstOutput.err < 1e-1, `output error ${worstOutput.err} (${worstOutput.where}) ≥ 1e-1`);
  t.true(worst.err < 0.35, `worst error ${worst.err} (${worst.where}) ≥ 0.35`);
  t.true(least.err > 1e-4, `least output error ${least.err} (${least.where}) looks like float32: the bfloat16 path did not run`);
});

test('bfloat16 training follows float32 from the same seed and stays finite across a fade', async (t) => {
  const data = await noiseDataset(dir, { count: 16, resolution: 16, seed: 5 });
  const run = async (precision: 'float32' | 'bfloat16') => {
    const trainer = await Trainer.create({
      data,
      network: { preset: 'small', resolution: 16, fmapMax: 32, latentSize: 32, precision },
      schedule: { startResolution: 8, stableKimg: 0.12, fadeKimg: 0.12, minibatch: 8, learningRate: 1e-3 },
      seed: 4,
    });
    const ticks: Progress[] = [];
    await trainer.train({ totalImages: 240, tickImages: 8, onProgress: (p) => p.tickSteps > 0 && ticks.push(p) });
    return ticks;
  };
  const fp32 = await run('float32');
  const bf16 = await run('bfloat16');
  t.is(bf16.length, 30);
  t.true(bf16.some((p) => p.phase === 'fade'), 'the run crosses into a fade');
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));
  const first = Math.max(...(['dLoss', 'gLoss', 'gradientPenalty'] as const).map((k) => rel(bf16[0][k], fp32[0][k])));
  t.log(`first step: dLoss ${bf16[0].dLoss.toFixed(5)} vs ${fp32[0].dLoss.toFixed(5)}, gLoss ${bf16[0].gLoss.toFixed(5)} vs ${fp32[0].gLoss.toFixed(5)}; worst relative ${first.toExponential(2)}`);
  t.log(`D loss at steps 10/20/30: bfloat16 ${[9, 19, 29].map((i) => bf16[i].dLoss.toFixed(4)).join(' ')} | float32 ${[9, 19, 29].map((i) => fp32[i].dLoss.toFixed(4)).join(' ')}`);
  t.true(first < 2e-2, `first-step losses differ by ${first}`);
  const bad = bf16.filter((p) => ![p.dLoss, p.gLoss, p.gradientPenalty].every(Number.isFinite));
  t.deepEqual(bad.map((p) => p.steps), [], 'steps with non-finite losses');
  t.is(bf16.at(-1)!.skippedD + bf16.at(-1)!.skippedG, 0, 'no update skipped');
});
