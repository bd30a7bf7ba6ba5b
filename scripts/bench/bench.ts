// `npm run bench`: our full training step (C++, timed inside C++) vs the same step in plain PyTorch
// (scripts/bench/pytorch_step.py, same torch wheel), on the same machine, interleaved, as ratios.
// Flags: --quick | --resolutions 4,8,16 | --presets small,paper | --steps N | --rounds N | --profile
//        --no-variants (only our default build vs torch) | --threads N | --out FILE
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatasetWriter } from '../../lib/dataset/format';
import { native } from '../../lib/native';
import { Trainer } from '../../lib/train/trainer';
import { fuseAuto, fuseNever, stepFlops, winogradAuto, type PresetName } from './flops';
import { peakRssMB } from './memory';
import { PyTorchChild, withRepoTorch } from './pytorch_child';

const FINAL = 64;
const BATCH = 16;

// ---------------------------------------------------------------- options
interface Args {
  quick: boolean;
  resolutions: number[] | null;
  presets: PresetName[];
  steps: number | null;
  rounds: number;
  profile: boolean;
  variants: boolean;
  threads: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    quick: false, resolutions: null, presets: ['small', 'paper'], steps: null, rounds: 3, profile: true, variants: true,
    threads: os.availableParallelism(), out: path.join(__dirname, 'results', 'cpu-latest.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${f} needs a value`);
      return v;
    };
    if (f === '--quick') a.quick = true;
    else if (f === '--resolutions') a.resolutions = next().split(',').map(Number);
    else if (f === '--presets') a.presets = next().split(',') as PresetName[];
    else if (f === '--steps') a.steps = Number(next());
    else if (f === '--rounds') a.rounds = Number(next());
    else if (f === '--profile') a.profile = true;
    else if (f === '--no-profile') a.profile = false;
    else if (f === '--no-variants') a.variants = false;
    else if (f === '--threads') a.threads = Number(next());
    else if (f === '--out') a.out = path.resolve(next());
    else throw new Error(`Unknown flag ${f}`);
  }
  for (const p of a.presets) if (p !== 'small' && p !== 'paper') throw new Error(`Unknown preset ${p} (small, paper)`);
  if (a.quick) {
    a.resolutions ??= [8, 32];
    if (!process.argv.includes('--presets')) a.presets = ['small'];
    if (!process.argv.includes('--profile')) a.profile = false;
    if (!process.argv.includes('--rounds')) a.rounds = 2;
  }
  return a;
}

/** Torch under libgomp's defaults, under OMP_WAIT_POLICY=PASSIVE, or under the user's own OpenMP settings. */
type TorchPolicy = 'default' | 'passive' | 'user';

function withoutOmpWait(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { OMP_WAIT_POLICY: _policy, GOMP_SPINCOUNT: _spin, ...rest } = env;
  return rest;
}

const POLICY_LABEL: Record<TorchPolicy, string> = { default: 'OMP default', passive: 'PASSIVE', user: 'your OMP settings' };

// ---------------------------------------------------------------- ours
type Variant = 'auto' | 'fusedScaleOff' | 'winogradOff' | 'reference' | 'bfloat16';
const VARIANT_NET = {
  auto: { fusedScale: 'auto', winograd: 'auto', impl: 'auto' },
  fusedScaleOff: { fusedScale: false, winograd: 'auto', impl: 'auto' },
  winogradOff: { fusedScale: 'auto', winograd: false, impl: 'auto' },
  reference: { fusedScale: 'auto', winograd: 'auto', impl: 'reference' },
  // Not the same math (bfloat16 multiplies): reported beside the fp32 comparison, never in the ratio.
  bfloat16: { fusedScale: 'auto', winograd: 'auto', impl: 'auto', precision: 'bfloat16' },
} as const;

function makeDataset(dir: string): string {
  const file = path.join(dir, 'random64.pgds');
  const w = new DatasetWriter(file, { resolution: FINAL, channels: 3, source: 'bench: uniform random bytes' });
  let seed = 12345;
  for (let i = 0; i < 64; i++) {
    const img = new Uint8Array(3 * FINAL * FINAL);
    for (let j = 0; j < img.length; j++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      img[j] = seed >>> 24;
    }
    w.append(img);
  }
  w.finish({ labelNames: [] });
  return file;
}

const trainers = new Map<string, Trainer>();
async function trainerFor(data: string, preset: PresetName, v: Variant, threads: number): Promise<Trainer> {
  const key = `${preset}/${v}`;
  let t = trainers.get(key);
  if (!t) {
    t = await Trainer.create({
      data,
      network: { preset, resolution: FINAL, ...VARIANT_NET[v] },
      schedule: { minibatch: BATCH, learningRate: 0.001 },
      ema: { beta: 0.999, halfLifeKimg: 0 },
      threads,
    });
    trainers.set(key, t);
  }
  return t;
}

/** Our steps/s from the C++ tick (images and seconds of the ticks that ran steps). */
async function runOurs(t: Trainer, res: number, fade: boolean, steps: number) {
  const phase = fade ? ('fade' as const) : ('stable' as const);
  await t.trainPhase({ resolution: res, phase, images: BATCH, tickImages: BATCH }); // warm-up step
  let images = 0;
  let seconds = 0;
  const cpu0 = process.cpuUsage(); // all of this process's threads: the training worker and OpenMP's
  await t.trainPhase({
    resolution: res, phase, images: steps * BATCH, tickImages: steps * BATCH,
    onProgress: (p) => {
      if (p.tickSteps > 0) {
        images += p.tickSteps * p.minibatch;
        seconds += p.seconds;
      }
    },
  });
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
  return { imagesPerSecond: images / seconds, stepMs: (1000 * seconds) / (images / BATCH), cpuMsPerStep, peakRssMB: peakRssMB() };
}

/** Our step's op mix: a profiled trainPhase (Chrome trace), summarised by the same rules as torch's. */
async function ourOpMix(py: PyTorchChild, t: Trainer, res: number, steps: number) {
  await t.trainPhase({ resolution: res, phase: 'stable', images: BATCH, tickImages: BATCH }); // warm-up step
  const trace = path.join(os.tmpdir(), `progan-bench-trace-${process.pid}.json`);
  try {
    await t.trainPhase({ resolution: res, phase: 'stable', images: steps * BATCH, tickImages: steps * BATCH, profile: trace });
    return await py.call({ op: 'traceMix', path: trace, steps });
  } finally {
    fs.rmSync(trace, { force: true });
  }
}

// ---------------------------------------------------------------- helpers
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(d));

interface Config { preset: PresetName; res: number; fade: boolean; steps: number }

function plan(a: Args): Config[] {
  const out: Config[] = [];
  for (const preset of a.presets) {
    // Paper channels are ~1–3 s per step at 8² on 2 busy cores and ~4× more per doubling: the default caps them at 8².
    const defaults = preset === 'paper' ? [4, 8] : [4, 8, 16, 32, 64];
    const resolutions = a.resolutions ?? defaults;
    for (const res of resolutions) {
      if (![4, 8, 16, 32, 64].includes(res)) throw new Error(`Resolution ${res} is not one of 4, 8, 16, 32, 64`);
      for (const fade of res === 4 ? [false] : [false, true]) {
        // Aim at ~1.5 s of our timed steps per measurement at 120 GFLOP/s of PyTorch's step FLOPs
        // (our small-preset steps ran 100–250 on a 2-core machine): samples of a few steps at 8²
        // (0.2 s) moved the ratio by ±0.3 with one burst of another tenant's load.
        const est = stepFlops(preset, res, fade, fuseNever, BATCH) / 120e9;
        const steps = a.steps ?? Math.max(preset === 'paper' && res >= 16 ? 1 : 2, Math.min(60, Math.round(1.5 / est)));
        out.push({ preset, res, fade, steps });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- main
async function main() {
  const a = parseArgs(process.argv.slice(2));
  const userSetOmp = process.env.OMP_WAIT_POLICY !== undefined || process.env.GOMP_SPINCOUNT !== undefined;
  const addon = native(); // a short OpenMP spin (GOMP_SPINCOUNT) unless the user chose a policy
  const ompWaitPolicy = `OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? '(unset)'} GOMP_SPINCOUNT=${process.env.GOMP_SPINCOUNT ?? '(unset)'}`;
  // The PyTorch a user would write runs under libgomp's defaults (spin up to 300,000 times, then
  // sleep), 10–40 % faster than under PASSIVE at small sizes on 2 cores, where PASSIVE is what a busy
  // machine calls for. Torch runs under both and the faster is the baseline. OpenMP settings the user
  // chose apply to both sides alike, and torch runs once.
  const torchPolicies: TorchPolicy[] = userSetOmp ? ['user'] : ['default', 'passive'];
  const torchEnv: Record<TorchPolicy, NodeJS.ProcessEnv> = {
    default: withoutOmpWait(process.env), passive: { ...withoutOmpWait(process.env), OMP_WAIT_POLICY: 'PASSIVE' }, user: process.env,
  };
  const torchProcess = Object.fromEntries(torchPolicies.map((p) => [p, new PyTorchChild(withRepoTorch(torchEnv[p]))])) as Partial<Record<TorchPolicy, PyTorchChild>>;
  const py = torchProcess[torchPolicies[0]]!; // profiles, ceilings, bookkeeping
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-bench-'));
  const started = Date.now();
  try {
    const data = makeDataset(dir);
    const info = await py.call<{ torch: string; cpuCapability: string }>({ op: 'info' });
    const cpuModel = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model;
    const load0 = os.loadavg();
    const ceil0 = await py.call<{ gemmGflops: number; conv3x3Gflops: number }>({ op: 'ceiling', threads: a.threads });
    const configs = plan(a);
    const variants: Variant[] = a.variants ? ['auto', 'fusedScaleOff', 'winogradOff', 'reference', 'bfloat16'] : ['auto'];
    console.error(`bench: ${configs.length} configs × (${variants.length} ours + torch) × ${a.rounds} rounds, ${a.threads} threads, ours under ${ompWaitPolicy}, load ${load0.map((x) => x.toFixed(1)).join(' ')}`);

    type Sample = {
      ours: Partial<Record<Variant, number[]>>; torch: Record<TorchPolicy, number[]>; oursCpuMs: number[]; torchCpuMs: Record<TorchPolicy, number[]>;
      rssOurs: number; rssTorch: number;
    };
    const samples = new Map<Config, Sample>();
    for (const c of configs) {
      samples.set(c, {
        ours: {}, torch: { default: [], passive: [], user: [] }, oursCpuMs: [], torchCpuMs: { default: [], passive: [], user: [] }, rssOurs: 0, rssTorch: 0,
      });
    }
    for (let round = 0; round < a.rounds; round++) {
      for (const c of configs) {
        const s = samples.get(c)!;
        // fusedScale only changes anything from 8² up ('auto' fuses at ≥ 8): skip the duplicate. (Winograd
        // takes 3×3 layers of 128+ channels, which every step of both presets has in its 4²–16² blocks.)
        const vs = variants.filter((v) => v !== 'fusedScaleOff' || c.res >= 8);
        // ABAB…, with the order reversed every other round so no side always runs first.
        const order: (Variant | TorchPolicy)[] = [];
        vs.forEach((v, i) => {
          order.push(v);
          if (i === 0) order.push(...torchPolicies);
        });
        if (round % 2) order.reverse();
        for (const who of order) {
          if (who === 'default' || who === 'passive' || who === 'user') {
            const r = await torchProcess[who]!.call<{ imagesPerSecond: number; cpuMsPerStep: number; peakRssMB: number }>({
              op: 'step', preset: c.preset, resolution: c.res, alpha: c.fade ? 0.5 : 1, batch: BATCH, steps: c.steps, warmup: 1, threads: a.threads, finalResolution: FINAL,
            });
            s.torch[who].push(r.imagesPerSecond);
            s.torchCpuMs[who].push(r.cpuMsPerStep);
            s.rssTorch = r.peakRssMB;
          } else {
            const t = await trainerFor(data, c.preset, who, a.threads);
            const r = await runOurs(t, c.res, c.fade, c.steps);
            (s.ours[who] ??= []).push(r.imagesPerSecond);
            if (who === 'auto') s.oursCpuMs.push(r.cpuMsPerStep);
            s.rssOurs = r.peakRssMB;
          }
        }
        const last = (xs: number[] | undefined) => fmt(xs?.[xs.length - 1]);
        const torchLast = torchPolicies.map((p) => `${last(s.torch[p])} (${p})`).join(' ');
        console.error(`  round ${round + 1} ${c.preset} ${c.res}² ${c.fade ? 'fade' : 'stable'} ×${c.steps}: ours ${last(s.ours.auto)} torch ${torchLast} img/s`);
      }
    }

    const extra: Record<string, unknown> = {};
    if (a.profile) {
      console.error('bench: profiling (PyTorch op mix, GP and bookkeeping ablations)');
      const prof: Record<string, unknown> = {};
      for (const res of [8, 32]) {
        const job = { preset: 'small', resolution: res, alpha: 1, batch: BATCH, threads: a.threads, finalResolution: FINAL };
        prof[`small ${res}² op mix`] = await py.call({ op: 'profile', ...job, steps: 2 });
        prof[`small ${res}² our op mix`] = await ourOpMix(py, await trainerFor(data, 'small', 'auto', a.threads), res, 2);
        const withGp: number[] = [];
        const noGp: number[] = [];
        const check: number[] = [];
        for (let i = 0; i < 2; i++) {
          withGp.push((await py.call<{ stepMs: number }>({ op: 'step', ...job, steps: 3 })).stepMs);
          noGp.push((await py.call<{ stepMs: number }>({ op: 'step', ...job, steps: 3, gp: false })).stepMs);
          check.push((await py.call<{ stepMs: number }>({ op: 'step', ...job, steps: 3, checkFinite: true })).stepMs);
        }
        prof[`small ${res}² torch step ms (median): with GP / without GP / with non-finite check`] = [median(withGp), median(noGp), median(check)].map((x) => +x.toFixed(1));
        for (const preset of ['small', 'paper']) {
          prof[`${preset} ${res}² our per-step bookkeeping, ms (same ATen calls)`] = await py.call({ op: 'adamCost', ...job, preset });
        }
      }
      extra.profile = prof;
    }
    // Peak RSS of a fresh process per side, one model each, at the largest resolution planned (fading).
    const rss: Record<string, unknown> = {};
    for (const preset of a.presets) {
      const res = Math.max(...configs.filter((c) => c.preset === preset).map((c) => c.res));
      if (!Number.isFinite(res)) continue;
      const env = withRepoTorch(process.env);
      const o = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'rss_child.ts'), data, preset, String(res), String(a.threads)], { env, encoding: 'utf8' });
      const job = JSON.stringify({ op: 'step', preset, resolution: res, alpha: 0.5, batch: BATCH, steps: 1, warmup: 1, threads: a.threads, finalResolution: FINAL });
      const p = spawnSync('python3', [path.join(__dirname, 'pytorch_step.py'), '--lines'], { env, input: job + '\n', encoding: 'utf8' });
      const parse = (x: string) => { try { return JSON.parse(x.trim().split('\n').pop() ?? '').peakRssMB as number; } catch { return NaN; } };
      rss[`${preset} ${res}²`] = { oursMB: parse(o.stdout), torchMB: parse(p.stdout) };
    }
    extra.peakRssFreshProcess = rss;
    const ceil1 = await py.call<{ gemmGflops: number; conv3x3Gflops: number }>({ op: 'ceiling', threads: a.threads });
    const ceiling = { gemmGflops: Math.max(ceil0.gemmGflops, ceil1.gemmGflops), conv3x3Gflops: Math.max(ceil0.conv3x3Gflops, ceil1.conv3x3Gflops), samples: [ceil0, ceil1] };
    const peak = Math.max(ceiling.gemmGflops, ceiling.conv3x3Gflops);
    const load1 = os.loadavg();

    // ------------------------------------------------------------ report
    const rows = configs.map((c) => {
      const s = samples.get(c)!;
      const ours = median(s.ours.auto ?? []);
      const perPolicy = (xs: Record<TorchPolicy, number[]>) =>
        Object.fromEntries(torchPolicies.map((p) => [p, median(xs[p])])) as Partial<Record<TorchPolicy, number>>;
      const byPolicy = perPolicy(s.torch);
      const baseline = torchPolicies.reduce((b, p) => (byPolicy[p]! > byPolicy[b]! ? p : b));
      const torch = byPolicy[baseline]!;
      const torchCpuMs = median(s.torchCpuMs[baseline]);
      const fo = s.ours.fusedScaleOff ? median(s.ours.fusedScaleOff) : undefined;
      const wo = s.ours.winogradOff ? median(s.ours.winogradOff) : undefined;
      const ref = s.ours.reference ? median(s.ours.reference) : undefined;
      const bf = s.ours.bfloat16 ? median(s.ours.bfloat16) : undefined;
      const flopsOurs = stepFlops(c.preset, c.res, c.fade, fuseAuto, BATCH, winogradAuto);
      const flopsTorch = stepFlops(c.preset, c.res, c.fade, fuseNever, BATCH);
      const gOurs = (flopsOurs * ours) / BATCH / 1e9;
      const gTorch = (flopsTorch * torch) / BATCH / 1e9;
      return {
        preset: c.preset, resolution: c.res, phase: c.fade ? 'fade' : 'stable', alpha: c.fade ? 'ours 0→1, torch 0.5' : 1, steps: c.steps,
        oursImagesPerSecond: ours, torchImagesPerSecond: torch, torchBaselinePolicy: baseline, torchImagesPerSecondByPolicy: byPolicy, ratio: ours / torch,
        cpuMsPerStep: { ours: median(s.oursCpuMs), torch: torchCpuMs }, cpuRatio: torchCpuMs / median(s.oursCpuMs),
        torchCpuMsPerStepByPolicy: perPolicy(s.torchCpuMs),
        oursFusedScaleOff: fo, fusedScaleGain: fo ? ours / fo : undefined,
        oursWinogradOff: wo, winogradGain: wo ? ours / wo : undefined,
        oursReference: ref, fusedOpsGain: ref ? ours / ref : undefined,
        oursBfloat16: bf, bfloat16Gain: bf ? bf / ours : undefined,
        samples: { ours: s.ours, torch: s.torch },
        gflopPerStep: { ours: flopsOurs / 1e9, torch: flopsTorch / 1e9 },
        achievedGflops: { ours: gOurs, torch: gTorch },
        fractionOfCeiling: { ours: gOurs / peak, torch: gTorch / peak },
        peakRssMBCumulative: { ours: s.rssOurs, torch: s.rssTorch },
      };
    });
    const out = {
      date: new Date().toISOString(),
      machine: { cpuModel, cores: os.availableParallelism(), cpuCapability: info.cpuCapability, torch: info.torch, addon: addon.versions() },
      threads: a.threads, ompWaitPolicy, batch: BATCH, finalResolution: FINAL, rounds: a.rounds,
      loadAverage: { start: load0, end: load1 }, seconds: (Date.now() - started) / 1000,
      ceiling, rows, ...extra,
      notes: [
        'ratio = median ours img/s / median torch img/s over interleaved rounds (same processes, same run); torch runs under libgomp\'s defaults and under OMP_WAIT_POLICY=PASSIVE (or once, under OpenMP settings the user chose), and the faster median is the baseline (torchBaselinePolicy)',
        'cpuRatio = median torch CPU ms per step (baseline policy) / median ours (process CPU time, all threads): time stolen by other tenants of a shared machine does not count, so it varies less than wall-clock img/s',
        'rows[].peakRssMBCumulative: each long-lived process\'s VmHWM so far (ours holds 4 variants × presets of trainers): compare peakRssFreshProcess instead',
        'bfloat16 variant: precision \'bfloat16\' (bfloat16 multiplies, float32 everything else) — not the same math, so never part of ratio',
        'GFLOP/s counts conv+dense multiply-adds actually executed (fused-scale and Winograd layers count 4/9 of a direct 3×3 layer); see stepFlops()',
        'ours in fade: one phase with α rising 0→(N−1)/N; the cost does not depend on α (every α < 1 runs both paths)',
      ],
    };
    fs.mkdirSync(path.dirname(a.out), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(out, (_k, v) => (typeof v === 'number' && !Number.isInteger(v) ? +v.toPrecision(4) : v), 1) + '\n');

    const lines = [
      `CPU: ${cpuModel} (${os.availableParallelism()} cores, torch ${info.torch}, capability ${info.cpuCapability}), threads ${a.threads}, ours under ${ompWaitPolicy}`,
      `Load average at start ${load0.map((x) => x.toFixed(1)).join(' ')}, at end ${load1.map((x) => x.toFixed(1)).join(' ')}; ${a.rounds} interleaved rounds, medians; batch ${BATCH}, fp32, networks built to ${FINAL}².`,
      `Ceiling (same Python process, best of runs): GEMM 1024³ ${fmt(ceiling.gemmGflops, 1)} GFLOP/s, conv3×3 (best of 256ch@16², 512ch@8², batch 16) ${fmt(ceiling.conv3x3Gflops, 1)} GFLOP/s. FLOP counts: analytic (stepFlops), equal to torch.utils.flop_counter's on the PyTorch step.`,
      '',
      `| preset | res | phase | steps | ours img/s | torch img/s (${torchPolicies.map((p) => POLICY_LABEL[p]).join(' / ')}; bold: the baseline) | **ours/torch** | fusedScale off img/s (gain) | winograd off img/s (gain) | impl reference img/s (gain) | bfloat16 img/s (× fp32) | CPU ms/step ours / torch (ratio) | GFLOP/step ours/torch | GFLOP/s ours/torch (% ceil) |`,
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) =>
        `| ${r.preset} | ${r.resolution} | ${r.phase} | ${r.steps} | ${fmt(r.oursImagesPerSecond)} | ${torchPolicies.map((p) => (p === r.torchBaselinePolicy ? `**${fmt(r.torchImagesPerSecondByPolicy[p])}**` : fmt(r.torchImagesPerSecondByPolicy[p]))).join(' / ')} | **${fmt(r.ratio)}** | ` +
        `${r.oursFusedScaleOff !== undefined ? `${fmt(r.oursFusedScaleOff)} (${fmt(r.fusedScaleGain)}×)` : r.resolution < 8 ? 'n/a (= auto below 8²)' : '–'} | ` +
        `${r.oursWinogradOff === undefined ? '–' : `${fmt(r.oursWinogradOff)} (${fmt(r.winogradGain)}×)`} | ` +
        `${r.oursReference === undefined ? '–' : `${fmt(r.oursReference)} (${fmt(r.fusedOpsGain)}×)`} | ` +
        `${r.oursBfloat16 === undefined ? '–' : `${fmt(r.oursBfloat16)} (${fmt(r.bfloat16Gain)}×)`} | ` +
        `${fmt(r.cpuMsPerStep.ours, 0)} / ${fmt(r.cpuMsPerStep.torch, 0)} (**${fmt(r.cpuRatio)}**) | ` +
        `${fmt(r.gflopPerStep.ours, 1)} / ${fmt(r.gflopPerStep.torch, 1)} | ${fmt(r.achievedGflops.ours, 1)} / ${fmt(r.achievedGflops.torch, 1)} (${fmt(100 * r.fractionOfCeiling.ours, 0)}% / ${fmt(100 * r.fractionOfCeiling.torch, 0)}%) |`,
      ),
      '',
      `JSON: ${path.relative(process.cwd(), a.out)} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
    ];
    lines.push('', `Peak RSS, fresh process per side, one model each, 2 fading steps (MB): ${JSON.stringify(extra.peakRssFreshProcess)}`);
    if (extra.profile) lines.push('', 'Profile:', '```json', JSON.stringify(extra.profile, null, 1), '```');
    console.log(lines.join('\n'));
  } finally {
    for (const p of Object.values(torchProcess)) p?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
