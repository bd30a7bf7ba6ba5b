// A short training run at every resolution from 4² up to --max-res (default 256²) on --device
// (default: cuda when visible, else cpu), with small networks on a synthetic random .pgds dataset:
// per resolution a fade phase (above 4²) and a stable phase of --images images each. Asserts
// finite losses after every phase and no skipped (non-finite) steps; logs img/s per resolution and
// phase; writes a sample grid of the EMA generator to --grid (PNG) when given. --precisions
// float32,bfloat16 runs the whole schedule once per precision (one RESULT line each).
// Prints `RESULT train PASS|FAIL ...` (scripts/gpu-smoke collects it).
import fs from 'node:fs';
import { imageGrid } from '../../lib/images';
import { randn } from '../../lib/tensor';
import { Trainer, type Progress } from '../../lib/train/trainer';
import { arg, describeAddon, numArg, removeTempDir, syntheticDataset, table } from './common';

async function main() {
  const addon = describeAddon();
  const device = arg('device', addon.cuda ? 'cuda' : 'cpu') as 'cpu' | 'cuda';
  const maxRes = numArg('max-res', 256);
  const images = numArg('images', 320);
  const fmapMax = numArg('fmap-max', 64);
  const grid = arg('grid', '');
  const precisions = arg('precisions', 'float32').split(',') as ('float32' | 'bfloat16')[];
  console.log(`addon: ${addon.build} build, torch ${addon.torch}; device ${device}; 4²…${maxRes}², ${images} images per phase, fmapMax ${fmapMax}; precisions ${precisions.join(', ')}`);
  let t = Date.now();
  const data = syntheticDataset(maxRes, 64, 3, 11);
  console.log(`synthetic dataset ${maxRes}² × 64 in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  for (const precision of precisions) {
    await trainAll(data, device, maxRes, images, fmapMax, precision, precision === precisions[0] ? grid : '');
  }
  removeTempDir();
}

async function trainAll(data: string, device: 'cpu' | 'cuda', maxRes: number, images: number, fmapMax: number, precision: 'float32' | 'bfloat16', grid: string) {
  let t = Date.now();
  console.log(`\n== precision ${precision}`);
  const trainer = await Trainer.create({
    data,
    device,
    seed: 3,
    network: { preset: 'small', resolution: maxRes, fmapMax, latentSize: 64, precision },
    schedule: { minibatch: 16 },
  });
  console.log(`trainer created in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const rows: (string | number)[][] = [['res', 'phase', 'images', 'seconds', 'img/s (wall)', 'img/s (tick)', 'dLoss', 'gLoss', 'GP', 'skipped D/G']];
  const failures: string[] = [];
  for (let res = 4; res <= maxRes; res *= 2) {
    for (const phase of res === 4 ? (['stable'] as const) : (['fade', 'stable'] as const)) {
      const t0 = process.hrtime.bigint();
      // The last tick that ran steps carries the losses (the final 'finished' event may carry none).
      let last: Progress | null = null;
      let ticks = 0;
      await trainer.trainPhase({ resolution: res, phase, images, tickImages: Math.max(1, Math.floor(images / 4)), onProgress: (q) => {
        if (q.tickSteps > 0) { last = q; ticks++; }
      } });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const st = trainer.state;
      const p: Progress = last ?? { dLoss: NaN, gLoss: NaN, gradientPenalty: NaN, drift: NaN, wasserstein: NaN, imagesPerSecond: NaN } as Progress;
      const finite = ticks > 0 && [p.dLoss, p.gLoss, p.gradientPenalty, p.drift, p.wasserstein].every(Number.isFinite);
      if (!finite) failures.push(`${res}² ${phase}: non-finite or missing losses (dLoss ${p.dLoss}, gLoss ${p.gLoss}, ${ticks} ticks)`);
      if (st.skippedD + st.skippedG > 0) failures.push(`${res}² ${phase}: skipped steps D ${st.skippedD} G ${st.skippedG}`);
      rows.push([`${res}²`, phase, images, s.toFixed(2), (images / s).toFixed(1), p.imagesPerSecond.toFixed(1), p.dLoss.toFixed(4), p.gLoss.toFixed(4), p.gradientPenalty.toFixed(4), `${st.skippedD}/${st.skippedG}`]);
      console.log(rows[rows.length - 1].join('  '));
    }
  }
  console.log('\n' + table(rows));
  if (grid) {
    const samples = trainer.sample(randn([16, 64], { seed: 99 }));
    const flat = samples.data as Float32Array;
    if (!flat.every(Number.isFinite)) failures.push('sample grid: non-finite generator output');
    fs.writeFileSync(grid, await imageGrid(samples, { columns: 4, padding: 2 }));
    console.log(`sample grid (EMA G, ${maxRes}²) → ${grid}`);
  }
  const name = precision === 'float32' ? `train:${device}` : `train:${device}:${precision}`;
  if (failures.length) {
    console.log(failures.join('\n'));
    console.log(`RESULT ${name} FAIL: ${failures[0]}`);
    process.exitCode = 1;
  } else {
    console.log(`RESULT ${name} PASS 4²…${maxRes}² finite losses, no skipped steps`);
  }
}

main().catch((e) => {
  console.error(e);
  console.log(`RESULT train FAIL: ${(e as Error).message.split('\n')[0]}`);
  removeTempDir();
  process.exitCode = 1;
});
