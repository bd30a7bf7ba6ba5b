// Training with every fast path on (fused-scale convolutions, Winograd 3×3 convolutions, channels-last
// layout, fused fade-in, gradient-penalty, bias + leaky ReLU and pixel-norm kernels) matches training with all of them off: same seed, same data order, 50 steps across a
// fade-in; so does the plain path with its weight gradients as matrix products (weightGradient 'gemm'). Both compute the same function; only float32 rounding differs, so the losses agree closely
// at first and may drift apart slowly as Adam amplifies rounding at leaky-ReLU kinks.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor } from '../lib/tensor';
import { Trainer, type Progress } from '../lib/train/trainer';
import { noiseDataset } from './helpers/datasets';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-fast-paths-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

// Per-step loss difference |a − b| / max(1, |b|): ≤ 1e-4 over the first 5 steps (a difference in
// the math shows at once), and over all 50 ≤ max(1e-3, 3 × what rounding alone does: the control).
// Five, not ten: with the fused bias + leaky ReLU and pixel-norm kernels the two paths round
// differently in every layer, and one run read 1.5e-7 at step 1, 4e-6 by step 5, 1e-5 by step 9,
// then 1.1e-4 at step 10 (a leaky-ReLU kink flipped) and 4e-5 after it.
const EARLY_STEPS = 5;
const EARLY_TOLERANCE = 1e-4;
const TOLERANCE = 1e-3;
// GAN training amplifies rounding differences: at the small preset's lr 0.002 two runs that differ
// only in summation order part after ~12 steps (1e-3) and by step 45 differ by O(1), with fast paths
// on or off alike. At lr 2e-4 the same 50 steps stay within the tolerance, so a real difference in
// the math (which shows from step 1) is still caught.
const LEARNING_RATE = 2e-4;

test('50 steps across a fade: fast paths on and off, and gemm weight gradients, give the same losses', async (t) => {
  const data = await noiseDataset(dir, { count: 24, resolution: 32, seed: 7 });

  // startResolution 16: 25 stable steps at 16², then 25 steps fading 32² in (fused-scale is active
  // from 8² up under 'auto'; here forced on or off at every resolution, as is Winograd, which
  // 'auto' leaves to layers of 128+ channels).
  // `nudge`: every G and D weight moved by about one float32 ulp before the first step.
  // `gemm`: the plain path with its 3×3 weight gradients as matrix products (weightGradient 'gemm',
  // which Winograd layers do not take), judged against the plain path by the same bounds.
  const run = async (fast: boolean, nudge = false, gemm = false) => {
    const trainer = await Trainer.create({
      data,
      network: {
        preset: 'small', resolution: 32, fmapMax: 32, latentSize: 32, fusedScale: fast, winograd: fast, channelsLast: fast,
        impl: fast ? 'auto' : 'reference', weightGradient: gemm ? 'gemm' : 'library',
      },
      schedule: { startResolution: 16, stableKimg: 0.2, fadeKimg: 0.2, minibatch: 8, learningRate: LEARNING_RATE },
      mirror: true,
      seed: 11,
    });
    if (nudge) {
      for (const which of ['generator', 'discriminator'] as const) {
        const params = trainer.parameters(which);
        const moved = [...params].map(([k, w]) => {
          const data = Float32Array.from(w.data as Float32Array, (v, i) => v * (1 + (i % 2 ? 1 : -1) * 2 ** -23));
          return [k, new Tensor(data, w.shape, 'float32')] as const;
        });
        trainer.setParameters(which, new Map(moved));
      }
    }
    const ticks: Progress[] = [];
    await trainer.train({ totalImages: 400, tickImages: 8, onProgress: (p) => p.tickSteps > 0 && ticks.push(p) });
    return ticks;
  };
  const fast = await run(true);
  const slow = await run(false);
  // Control: the plain path again from weights one rounding step away; its distance to the plain run
  // is what rounding alone grows into along this trajectory. (Running it on one thread instead gave
  // no control at all once every run's work ran on the compute thread: at these sizes 1 and 2
  // intra-op threads sum in the same order.)
  const control = await run(false, true);
  const gemm = await run(false, false, true);
  t.is(fast.length, 50);
  t.is(slow.length, 50);
  t.true(fast.some((p) => p.phase === 'fade') && fast.some((p) => p.phase === 'stable'), 'the run crosses into a fade');
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));
  const KEYS = ['dLoss', 'gLoss', 'gradientPenalty'] as const;
  // The control is measured on the same figures the comparison below judges.
  const controlWorst = Math.max(...control.map((a, i) => Math.max(...KEYS.map((k) => rel(a[k], slow[i][k])))));
  const bound = Math.max(TOLERANCE, 3 * controlWorst);
  const failures: string[] = [];
  // Each run against the plain one: per-step relative differences, the early steps' own bound.
  const compare = (name: string, runA: Progress[]) => {
    let worst = 0;
    let worstAt = -1;
    let early = 0;
    runA.forEach((a, i) => {
      const b = slow[i];
      t.is(a.resolution, b.resolution);
      t.is(a.alpha, b.alpha);
      for (const key of KEYS) {
        const err = rel(a[key], b[key]);
        if (err > worst) [worst, worstAt] = [err, i + 1];
        if (i < EARLY_STEPS) early = Math.max(early, err);
        const limit = i < EARLY_STEPS ? EARLY_TOLERANCE : bound;
        if (!(err <= limit)) failures.push(`${name} step ${i + 1} ${key}: ${a[key]} vs ${b[key]} (error ${err.toExponential(2)} > ${limit})`);
      }
    });
    t.log(`${name} vs plain: worst ${worst.toExponential(2)} at step ${worstAt} (bound ${bound.toExponential(2)}); first ${EARLY_STEPS} steps ${early.toExponential(2)} (bound ${EARLY_TOLERANCE})`);
  };
  t.log(`control (plain path from weights ~1 ulp away vs plain): worst loss difference ${controlWorst.toExponential(2)}`);
  t.is(gemm.length, 50);
  compare('fast', fast);
  compare('gemm weight gradients', gemm);
  t.log(`D loss at steps 1/25/50: fast ${[0, 24, 49].map((i) => fast[i].dLoss.toFixed(4)).join(' ')} | plain ${[0, 24, 49].map((i) => slow[i].dLoss.toFixed(4)).join(' ')}`);
  t.deepEqual(failures, []);
});
