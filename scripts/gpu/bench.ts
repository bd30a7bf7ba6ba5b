// Training throughput per resolution (the GPU benchmark when scripts/bench has no --device cuda
// mode): Trainer.trainPhase img/s, stable and fade, --min-res (default 4²) … --max-res (default
// 1024²), with the paper's networks (--preset paper: fmapBase 8192, fmapMax 512, latent 512) and the
// paper's minibatch per resolution, on a synthetic dataset. Each (resolution, phase): a warm-up of
// --warmup steps (cuDNN benchmark mode picks algorithms on new shapes), then a timed phase sized
// from the warm-up speed to last about --seconds (at least --min-steps steps). A resolution that
// fails (e.g. out of memory) is logged and the table goes on; --budget seconds bounds the whole run.
// --profile-dir DIR: after timing 8² and 32² fading, two more steps each under the torch profiler,
// written as Chrome traces DIR/trace-<res>-fade.json (CPU ops and, on a GPU, the CUDA kernels; there
// the steps replay the recorded graph, so the trace has its kernels but not the ops behind them;
// with --eager-too, trace-<res>-fade-eager.json has two steps of the eager trainer, op by op).
// --torch: after each of ours, the same step in plain PyTorch (scripts/bench/pytorch_step.py, the
// python3 on PATH and its torch; same preset, final resolution, minibatch, phase and step count), the
// ratio, and each side's achieved GFLOP/s (scripts/bench/flops.ts; with a preset's own channels) and
// its fraction of the conv ceiling the PyTorch side measures first (cuDNN's 3×3 convs on a GPU).
// --eager-too: 4²–32², both phases, also timed on a second trainer with cudaGraphs off (the CUDA graph
// gain, where launches cost most). --nchw-too: 16²–128², both phases, also timed on a trainer with
// channelsLast off (the channels-last gain). --reference-too: 8²–64², both phases, also timed on a
// trainer with impl 'reference' (every fused op as its ATen reference: the fused ops' gain). --gemm-too:
// 8²–128², both phases, also timed on a trainer with weightGradient 'gemm' (the 3×3 weight gradients
// as cuBLAS products, layers/gemm_weight_grad.h: its gain is that column over img/s). --json FILE: the table as JSON. Peak GPU memory per row on
// CUDA (caching allocator: allocated bytes, and reserved ones, which include a recorded graph's
// private pool).
// Prints `RESULT bench PASS|FAIL ...`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../../lib/native';
import { Trainer } from '../../lib/train/trainer';
import { fuseAuto, fuseNever, stepFlops } from '../bench/flops';
import { PyTorchChild, withRepoTorch } from '../bench/pytorch_child';
import { arg, describeAddon, numArg, removeTempDir, syntheticDataset, table } from './common';

interface TorchStep { imagesPerSecond: number; stepMs: number; peakGpuMB?: number; peakReservedGpuMB?: number; lossesFinite?: boolean }

/** Plain PyTorch: on the CPU the repo's libtorch wheel, as in npm run bench; on a GPU python3's own
 * CUDA torch (a CPU wheel first on the path would shadow it). */
function plainPyTorch(device: 'cpu' | 'cuda'): PyTorchChild {
  return new PyTorchChild(device === 'cpu' ? withRepoTorch(process.env) : process.env);
}

async function main() {
  const addon = describeAddon();
  const device = arg('device', addon.cuda ? 'cuda' : 'cpu') as 'cpu' | 'cuda';
  const maxRes = numArg('max-res', 1024);
  const minRes = numArg('min-res', 4);
  const preset = arg('preset', 'paper') as 'paper' | 'small';
  const fmapMax = numArg('fmap-max', 0);
  const warmup = numArg('warmup', 3);
  const seconds = numArg('seconds', 3);
  const minSteps = numArg('min-steps', 5);
  const budget = numArg('budget', 240);
  const phases = arg('phases', 'stable,fade').split(',') as ('stable' | 'fade')[];
  const profileDir = arg('profile-dir', '');
  const jsonOut = arg('json', '');
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
  const torch = process.argv.includes('--torch') ? plainPyTorch(device) : null;
  const gpuMemory = device === 'cuda' ? (reset = false) => native().cudaMemory(reset) : null;
  const start = Date.now();
  console.log(`addon: ${addon.build} build, torch ${addon.torch}; device ${device}; preset ${preset}${fmapMax ? `, fmapMax ${fmapMax}` : ''}; ${minRes}²…${maxRes}²; ` +
    `TF32 override ${process.env.NVIDIA_TF32_OVERRIDE ?? '(unset: cuDNN default, TF32 on)'}`);
  if (torch) console.log(`plain PyTorch side: ${JSON.stringify(await torch.call({ op: 'info' }))}`);
  // The machine's conv ceiling, measured by the PyTorch side (cuDNN's 3×3 convolutions at paper
  // shapes on a GPU), for the achieved-GFLOP/s columns' fraction.
  let ceiling: { gemmGflops: number; conv3x3Gflops: number; conv3x3ByShape?: Record<string, number> } | null = null;
  if (torch) {
    try {
      ceiling = await torch.call({ op: 'ceiling', device, threads: os.availableParallelism() });
      console.log(`ceiling: ${JSON.stringify(ceiling)}`);
    } catch (e) {
      console.log(`ceiling not measured: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  // Conv and dense FLOPs of a step as scripts/bench/flops.ts counts them (ours with the fused-scale
  // layers 'auto' takes, PyTorch's without); only for the presets' own channels.
  const flops = (res: number, phase: string, mb: number, fused: (r: number) => boolean) =>
    fmapMax ? null : stepFlops(preset, res, phase === 'fade', fused, mb);
  const gflops = (f: number | null, stepSeconds: number) => (f === null ? null : f / stepSeconds / 1e9);
  const ofCeiling = (g: number | null) => (g !== null && ceiling ? ` (${((100 * g) / ceiling.conv3x3Gflops).toFixed(0)} %)` : '');
  const data = syntheticDataset(maxRes, 16, 3, 21);
  const trainer = await Trainer.create({
    data,
    device,
    seed: 5,
    network: { preset, resolution: maxRes, ...(fmapMax ? { fmapMax } : {}) },
  });
  // Second trainers that time the same steps with one fast path off: its gain is the ratio.
  const network = { preset, resolution: maxRes, ...(fmapMax ? { fmapMax } : {}) };
  const comparisons: Comparison[] = [];
  if (process.argv.includes('--eager-too')) {
    comparisons.push({ column: 'eager img/s', key: 'eagerImagesPerSecond', runs: (res) => res <= 32,
      trainer: await Trainer.create({ data, device, seed: 5, cudaGraphs: false, network }) });
  }
  if (process.argv.includes('--nchw-too')) {
    comparisons.push({ column: 'NCHW img/s', key: 'nchwImagesPerSecond', runs: (res) => res >= 16 && res <= 128,
      trainer: await Trainer.create({ data, device, seed: 5, network: { ...network, channelsLast: false } }) });
  }
  if (process.argv.includes('--reference-too')) {
    comparisons.push({ column: 'reference ops img/s', key: 'referenceImagesPerSecond', runs: (res) => res >= 8 && res <= 64,
      trainer: await Trainer.create({ data, device, seed: 5, network: { ...network, impl: 'reference' } }) });
  }
  if (process.argv.includes('--gemm-too')) {
    comparisons.push({ column: 'gemm wgrad img/s', key: 'gemmImagesPerSecond', runs: (res) => res >= 8 && res <= 128,
      trainer: await Trainer.create({ data, device, seed: 5, network: { ...network, weightGradient: 'gemm' } }) });
  }
  console.log(`dataset + trainer ready in ${((Date.now() - start) / 1000).toFixed(1)} s; minibatch per resolution: ${JSON.stringify(trainer.options.schedule.minibatch)} base ${trainer.options.schedule.minibatchBase}`);
  const rows: (string | number)[][] = [['res', 'phase', 'minibatch', 'steps', 'seconds', 'img/s', 'ms/step', 'graph steps', ...comparisons.map((c) => c.column),
    ...(gpuMemory ? ['peak GPU MB alloc / reserved'] : []), ...(torch ? ['torch img/s', 'torch ms/step', 'ours/torch', 'GFLOP/s ours / torch', ...(gpuMemory ? ['torch peak GPU MB alloc / reserved'] : [])] : [])]];
  const records: Record<string, unknown>[] = [];
  let failures = 0;
  let measured = 0;
  for (let res = minRes; res <= maxRes; res *= 2) {
    for (const phase of phases) {
      if (phase === 'fade' && res === 4) continue;
      const left = budget - (Date.now() - start) / 1000;
      if (left < 2 * seconds) {
        rows.push([`${res}²`, phase, '-', '-', '-', 'skipped: --budget spent', '-']);
        continue;
      }
      try {
        const mb = minibatchAt(trainer, res);
        const w0 = process.hrtime.bigint();
        await trainer.trainPhase({ resolution: res, phase, images: warmup * mb, tickImages: warmup * mb });
        const ws = Number(process.hrtime.bigint() - w0) / 1e9;
        // The warm-up's speed includes cuDNN's algorithm search and the graph capture: size the timed
        // run from a second, settled one.
        const c0 = process.hrtime.bigint();
        await trainer.trainPhase({ resolution: res, phase, images: warmup * mb, tickImages: warmup * mb });
        const cs = Math.min(ws, Number(process.hrtime.bigint() - c0) / 1e9);
        const steps = Math.max(minSteps, Math.min(2000, Math.ceil((seconds * warmup) / Math.max(cs, 1e-3))));
        gpuMemory?.(true);
        const replays0 = trainer.state.cudaGraphs.replays;
        const t0 = process.hrtime.bigint();
        const p = await trainer.trainPhase({ resolution: res, phase, images: steps * mb, tickImages: steps * mb });
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        const memory = gpuMemory?.();
        const peakGpuMB = memory ? memory.peakAllocatedBytes / 2 ** 20 : undefined;
        // Reserved bytes include a recorded graph's private pool, which the allocated count misses;
        // they also hold what the comparison trainers (--eager-too, --nchw-too) keep cached.
        const peakReservedGpuMB = memory ? memory.peakReservedBytes / 2 ** 20 : undefined;
        const ours = (steps * mb) / s;
        const graphs = trainer.state.cudaGraphs;
        const graphSteps = graphs.replays - replays0;
        const row: (string | number)[] = [`${res}²`, phase, mb, steps, s.toFixed(2), ours.toFixed(1), ((1000 * s) / steps).toFixed(1), graphSteps];
        const record: Record<string, unknown> = { res, phase, minibatch: mb, steps, seconds: s, imagesPerSecond: ours, peakGpuMB, peakReservedGpuMB, graphSteps };
        if (graphs.failure) console.log(`CUDA graphs off: ${graphs.failure}`);
        for (const c of comparisons) {
          if (c.runs(res, phase)) {
            await c.trainer.trainPhase({ resolution: res, phase, images: warmup * mb, tickImages: warmup * mb });
            const e0 = process.hrtime.bigint();
            await c.trainer.trainPhase({ resolution: res, phase, images: steps * mb, tickImages: steps * mb });
            const imagesPerSecond = (steps * mb) / (Number(process.hrtime.bigint() - e0) / 1e9);
            row.push(imagesPerSecond.toFixed(1));
            record[c.key] = imagesPerSecond;
          } else row.push('-');
        }
        if (peakGpuMB !== undefined) row.push(`${peakGpuMB.toFixed(0)} / ${peakReservedGpuMB?.toFixed(0)}`);

        if (!Number.isFinite(p.dLoss)) failures++;
        measured++;
        if (torch) {
          try {
            const t = await torch.call<TorchStep>({
              op: 'step', device, preset, resolution: res, alpha: phase === 'fade' ? 0.5 : 1, batch: mb, steps, warmup,
              threads: os.availableParallelism(), finalResolution: maxRes, ...(fmapMax ? { fmapMax } : {}),
            });
            const gOurs = gflops(flops(res, phase, mb, fuseAuto), s / steps);
            const gTorch = gflops(flops(res, phase, mb, fuseNever), t.stepMs / 1e3);
            row.push(t.imagesPerSecond.toFixed(1), t.stepMs.toFixed(1), (ours / t.imagesPerSecond).toFixed(2),
              gOurs === null || gTorch === null ? '-' : `${gOurs.toFixed(0)}${ofCeiling(gOurs)} / ${gTorch.toFixed(0)}${ofCeiling(gTorch)}`);
            if (gpuMemory) row.push(`${t.peakGpuMB?.toFixed(0) ?? '-'} / ${t.peakReservedGpuMB?.toFixed(0) ?? '-'}`);
            record.torch = t;
            record.ratio = ours / t.imagesPerSecond;
            record.achievedGflops = { ours: gOurs, torch: gTorch };
          } catch (e) {
            row.push(`torch FAILED: ${(e as Error).message.split('\n')[0].slice(0, 80)}`);
          }
        }
        rows.push(row);
        records.push(record);
        if (profileDir && phase === 'fade' && (res === 8 || res === 32)) {
          const trace = path.join(profileDir, `trace-${res}-fade.json`);
          await trainer.trainPhase({ resolution: res, phase, images: 2 * mb, tickImages: 2 * mb, profile: trace });
          console.log(`profile of 2 steps at ${res}²: ${trace} (${(fs.statSync(trace).size / 1e6).toFixed(1)} MB)`);
          // The eager trainer's steps show which op launched each kernel.
          const eager = comparisons.find((c) => c.key === 'eagerImagesPerSecond' && c.runs(res, phase));
          if (eager) {
            const eagerTrace = path.join(profileDir, `trace-${res}-fade-eager.json`);
            await eager.trainer.trainPhase({ resolution: res, phase, images: 2 * mb, tickImages: 2 * mb, profile: eagerTrace });
            console.log(`profile of 2 eager steps at ${res}²: ${eagerTrace} (${(fs.statSync(eagerTrace).size / 1e6).toFixed(1)} MB)`);
          }
        }
      } catch (e) {
        failures++;
        rows.push([`${res}²`, phase, '-', '-', '-', `FAILED: ${(e as Error).message.split('\n')[0].slice(0, 100)}`, '-']);
      }
      console.log(rows[rows.length - 1].join('  '));
    }
  }
  torch?.close();
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ addon, device, preset, minRes, maxRes, tf32Override: process.env.NVIDIA_TF32_OVERRIDE ?? null, ceiling, records }, null, 1));
  console.log('\n' + table(rows));
  console.log(`total ${((Date.now() - start) / 1000).toFixed(1)} s`);
  removeTempDir();
  console.log(failures ? `RESULT bench:${device} FAIL: ${failures} resolution/phase run(s) failed (see the table)` : `RESULT bench:${device} PASS ${measured} runs measured`);
  process.exitCode = failures ? 1 : 0;
}

/** A second trainer with one fast path off, timed on the same steps where `runs` says. */
interface Comparison {
  column: string;
  key: string;
  runs: (res: number, phase: 'stable' | 'fade') => boolean;
  trainer: Trainer;
}

function minibatchAt(trainer: Trainer, res: number): number {
  const s = trainer.options.schedule;
  return s.minibatch[String(res)] ?? s.minibatchBase;
}

main().catch((e) => {
  console.error(e);
  console.log(`RESULT bench FAIL: ${(e as Error).message.split('\n')[0]}`);
  removeTempDir();
  process.exitCode = 1;
});
