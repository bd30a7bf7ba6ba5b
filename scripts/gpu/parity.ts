// CUDA parity of the fused kernels (native/ops/*.cu) against their ATen references, through the
// APIs that exist (there is no JS entry for a raw op):
//   * Trainers with identical weights, network option impl 'auto' (fused kernels) and impl
//     'reference' (ATen ops), on device 'cuda' and on 'cpu':
//       - trainer.sample(latents, {resolution, alpha < 1, ema: false}): G's output fade blend
//         (upsampleLerp forward);
//       - trainer.debugStep(...): D loss terms (fadeReals on the reals, the gradient penalty's
//         per-sample norms), every D gradient (the GP's backward: second derivatives through D),
//         G loss and every G gradient (upsampleLerp backward = the SumPool2x kernel). impl also
//         switches D's minibatch stddev between its closed-form derivatives and the ATen composite,
//         so the same comparisons cover those on the GPU (ATen ops there, no CUDA kernel of its own).
//   * Comparisons (fp32, max relative error = max|a − b| / max|b| per tensor):
//       cuda-kernels  cuda/auto vs cuda/reference   G output < 1e-5, losses and gradients < 1e-4
//       cuda-vs-cpu   cuda/auto vs cpu/reference    G output < 1e-4, losses and gradients < 1e-3
//       cpu-kernels   cpu/auto  vs cpu/reference    (control) same bounds as cuda-kernels
//     Bounds are above fp32 noise, far below a wrong kernel (an indexing or scaling bug gives O(1)).
//     Some cases are ill-conditioned: the first layers' G gradients at 32² come out of a long chain
//     of pixel norms, and cuDNN's benchmark mode may pick differently rounding algorithms for the
//     two trainers (on an H100, cuda/auto vs cuda/reference gave 1.95e-3 in one run and 5.7e-7 in
//     the next for such a case). So each cuda-kernels bound rises to 10 × that case's control,
//     cuda/reference vs cpu/reference (two ATen implementations of the same math: 9.6e-4 there).
//     cuDNN's TF32 must be off for these bounds: scripts/gpu-smoke sets NVIDIA_TF32_OVERRIDE=0.
//   * fp64: the Trainer has no dtype option and Networks (which has setDtype('float64')) is
//     CPU-only, so CUDA fp64 parity cannot run through the JS API: reported as NOT RUN (missing
//     API). The CPU fp64 kernels are checked through Networks (G forwardBackward at α < 1) < 1e-12.
//   * cuda-graphs: training with the step recorded as a CUDA graph and replayed (option
//     cudaGraphs) vs the same steps run eagerly, from the same seed and data, 6 steps at 8² and at
//     32² with the small preset (its EMA β ramps up every step: a replay must follow it), stable and
//     fading (α rises every step: a replay must follow it too): every step's losses and the final
//     G, D and G_ema weights. All three trainers run with `deterministic: true`, so a second eager
//     run (the control) should match the first exactly. A recorded fade blends with ATen's lerp by
//     an α on the device (lerp with a tensor weight); so does an eager step with impl 'reference'
//     on a GPU (Trainer::eagerAlpha: with a number, the backward's 1 − α rounds in double, and Adam
//     grew that ulp to 1.2e-4 in 6 steps at 32²), while with impl 'auto' it runs the fused kernels,
//     which round differently. Bound: max(10 × control, floor), floor 1e-5
//     for stable steps and 'reference' fades, 1e-3 for the 'auto' fade (the default training
//     path); a stale input, a missed update, or a β or α frozen at its recorded value (α moves by
//     1/6 per step) differs by far more. The graph trainer must report 1 capture and 4 replays per
//     case (2 eager warm-up steps first), else FAIL.
//   * cuda-ops: each fused op on its own through native().opDerivatives({device: 'cuda'}) (output,
//     first derivatives, and the double backward's derivatives in the output gradient and every
//     input), fresh random inputs per case, against the reference ATen ops on the CPU in float64
//     (< 1e-6: the kernels' own float64 arithmetic) and on the GPU in float32 (< 1e-5): bias +
//     leaky ReLU and pixel norm in NCHW and channels-last with channel and pixel counts that take
//     the 16-byte paths and ones that do not, the fade blends, the penalty's norms, and 3×3
//     convolutions whose weight gradient runs as cuBLAS products (weightGradient 'gemm').
// Sizes: batch 1, 3, 4, 5, 7, 8; channels 1 and 3; odd latent and feature-map counts; resolutions
// 4…32 (kernels only see even power-of-two sizes: the networks never make others).
// Prints one line `RESULT <check> PASS|FAIL|NOT RUN: <why>` per check (scripts/gpu-smoke collects them).
import { native } from '../../lib/native';
import { createNetworks } from '../../lib/networks';
import { randn, Tensor } from '../../lib/tensor';
import { fromNative, toNative } from '../../lib/tensor';
import { Trainer } from '../../lib/train/trainer';
import type { NamedTensors } from '../../lib/safetensors';
import { arg, describeAddon, fmt, relativeError, removeTempDir, scalarError, syntheticDataset, table, uniform } from './common';

type Device = 'cpu' | 'cuda';
type Impl = 'auto' | 'reference';
const LEARNING_RATE = 0.002;

interface NetCase {
  id: string;
  network: { preset: 'small'; resolution: number; channels: 1 | 3; fmapMax: number; latentSize: number; minibatchStddevGroup: number };
  cases: { res: number; alpha: number; n: number }[];
}
const NETS: NetCase[] = [
  {
    id: 'rgb32',
    network: { preset: 'small', resolution: 32, channels: 3, fmapMax: 24, latentSize: 20, minibatchStddevGroup: 4 },
    cases: [
      { res: 4, alpha: 1, n: 4 },
      { res: 8, alpha: 0.37, n: 4 },
      { res: 16, alpha: 0.5, n: 1 },
      { res: 32, alpha: 0.63, n: 3 },
      { res: 32, alpha: 1, n: 8 },
    ],
  },
  {
    id: 'gray16',
    network: { preset: 'small', resolution: 16, channels: 1, fmapMax: 13, latentSize: 11, minibatchStddevGroup: 0 },
    cases: [
      { res: 8, alpha: 0.25, n: 5 },
      { res: 16, alpha: 0.8, n: 7 },
      { res: 16, alpha: 1, n: 1 },
    ],
  },
];

interface Bounds { output: number; step: number }
const SAME_DEVICE: Bounds = { output: 1e-5, step: 1e-4 };
const CROSS_DEVICE: Bounds = { output: 1e-4, step: 1e-3 };
const FP64_CPU = 1e-12;

interface Outcome {
  sample: Tensor;
  stats: Record<string, number | boolean>;
  d: NamedTensors;
  g: NamedTensors;
}

function randomWeights(params: NamedTensors, seed: number): NamedTensors {
  let i = 0;
  return new Map(
    [...params].map(([name, t]) => {
      const r = randn(t.shape, { seed: seed + 101 * i++ });
      const data = r.data as Float32Array;
      if (name.endsWith('.bias')) for (let j = 0; j < data.length; j++) data[j] *= 0.1;
      return [name, r];
    }),
  );
}

function runCase(tr: Trainer, g: NamedTensors, d: NamedTensors, c: { res: number; alpha: number; n: number }, latent: number, channels: number, seed: number): Outcome {
  tr.setParameters('generator', g);
  tr.setParameters('discriminator', d);
  const latents = randn([c.n, latent], { seed });
  const sample = tr.sample(latents, { resolution: c.res, alpha: c.alpha, ema: false });
  const r = tr.debugStep(
    { resolution: c.res, alpha: c.alpha, learningRate: LEARNING_RATE },
    {
      reals: toNative(randn([c.n, channels, c.res, c.res], { seed: seed + 1 }), 'reals'),
      realLabels: null,
      latentsD: toNative(randn([c.n, latent], { seed: seed + 2 }), 'latentsD'),
      u: toNative(uniform([c.n, 1, 1, 1], seed + 3), 'u'),
      latentsG: toNative(randn([c.n, latent], { seed: seed + 4 }), 'latentsG'),
      fakeLabels: null,
    },
  );
  const named = (l: [string, Parameters<typeof fromNative>[0]][]) => new Map(l.map(([k, t]) => [k, fromNative(t)] as [string, Tensor]));
  return { sample, stats: r.stats as unknown as Record<string, number | boolean>, d: named(r.discriminatorGradients), g: named(r.generatorGradients) };
}

const STATS = ['dLoss', 'gradientPenalty', 'drift', 'wasserstein', 'gLoss'] as const;

interface Row { caseId: string; output: number; stats: number; statWorst: string; d: number; dWorst: string; g: number; gWorst: string; skipped: boolean }

function compare(caseId: string, a: Outcome, b: Outcome): Row {
  const output = relativeError(a.sample, b.sample);
  let stats = 0, statWorst = '';
  for (const s of STATS) {
    // The Wasserstein term is a difference of two means (cancellation): judged on the D loss's scale.
    const floor = s === 'wasserstein' ? Math.max(1e-3, Math.abs(b.stats.dLoss as number)) : 1e-3;
    const e = scalarError(a.stats[s] as number, b.stats[s] as number, floor);
    if (!(e <= stats)) { stats = e; statWorst = s; }
  }
  const worst = (x: NamedTensors, y: NamedTensors): [number, string] => {
    let m = 0, w = '';
    if ([...x.keys()].sort().join() !== [...y.keys()].sort().join()) return [Infinity, 'parameter names differ'];
    for (const [k, t] of y) {
      const e = relativeError(x.get(k)!, t);
      if (!(e <= m)) { m = e; w = k; }
    }
    return [m, w];
  };
  const [d, dWorst] = worst(a.d, b.d);
  const [g, gWorst] = worst(a.g, b.g);
  const skipped = [a, b].some((o) => o.stats.dSkipped || o.stats.gSkipped);
  return { caseId, output, stats, statWorst, d, dWorst, g, gWorst, skipped };
}

/** `controls[i]`, when given, is case i's conditioning: two correct implementations compared (see the
 * header); each bound then rises to 10 × what they differ by. */
function report(name: string, rows: Row[], bounds: Bounds, controls?: Row[]): boolean {
  const limit = (i: number, key: 'output' | 'stats' | 'd' | 'g') =>
    Math.max(key === 'output' ? bounds.output : bounds.step, controls ? 10 * controls[i][key] : 0);
  const ok = (r: Row, i: number) => (['output', 'stats', 'd', 'g'] as const).every((k) => r[k] < limit(i, k)) && !r.skipped;
  console.log(`\n== ${name}: G output < ${fmt(bounds.output)}, losses / gradients < ${fmt(bounds.step)}${controls ? ', or 10 × the control where that is larger' : ''}`);
  const control = (i: number, k: 'output' | 'stats' | 'd' | 'g') => (controls ? ` (${fmt(controls[i][k])})` : '');
  console.log(table([
    ['case', 'G output', 'losses (worst)', 'D grads (worst)', 'G grads (worst)', 'ok'],
    ...rows.map((r, i) => [r.caseId, fmt(r.output) + control(i, 'output'), `${fmt(r.stats)}${control(i, 'stats')} ${r.statWorst}`,
      `${fmt(r.d)}${control(i, 'd')} ${r.dWorst}`, `${fmt(r.g)}${control(i, 'g')} ${r.gWorst}`, ok(r, i) ? 'ok' : r.skipped ? 'FAIL (step skipped: non-finite)' : 'FAIL']),
  ]));
  if (controls) console.log('(in brackets: the control, cuda/reference vs cpu/reference, the worst tensor of each group)');
  const max = (f: (r: Row) => number) => fmt(Math.max(...rows.map(f)));
  const pass = rows.every(ok);
  console.log(`max: G output ${max((r) => r.output)}, losses ${max((r) => r.stats)}, D grads ${max((r) => r.d)}, G grads ${max((r) => r.g)}`);
  return pass;
}

/** CPU fp64 control: G forwardBackward at α < 1 with fused vs reference kernels (Networks is CPU-only). */
function cpuFp64Control(): boolean {
  console.log(`\n== cpu-fp64: Networks (CPU) G forwardBackward, impl auto vs reference, float64: every tensor < ${fmt(FP64_CPU)}`);
  const rows: (string | number)[][] = [['case', 'output', 'latent grad', 'param grads (worst)']];
  let pass = true;
  for (const [res, alpha, n] of [[8, 0.37, 1], [16, 0.6, 3], [32, 0.5, 4]] as const) {
    const opts = { preset: 'small', resolution: 32, fmapMax: 24, latentSize: 20, seed: 7 } as const;
    const a = createNetworks({ ...opts, impl: 'auto' });
    const b = createNetworks({ ...opts, impl: 'reference' });
    a.setDtype('float64');
    b.setDtype('float64');
    b.generator.setParameters(a.generator.parameters());
    const z = randn([n, 20], { seed: 100 + res, dtype: 'float64' });
    const go = randn([n, 3, res, res], { seed: 200 + res, dtype: 'float64' });
    const ra = a.generator.forwardBackward(z, go, { resolution: res, alpha });
    const rb = b.generator.forwardBackward(z, go, { resolution: res, alpha });
    let worst = 0, where = '';
    for (const [k, t] of rb.gradients) {
      const e = relativeError(ra.gradients.get(k)!, t);
      if (!(e <= worst)) { worst = e; where = k; }
    }
    const eo = relativeError(ra.output, rb.output), ei = relativeError(ra.inputGrad, rb.inputGrad);
    pass &&= eo < FP64_CPU && ei < FP64_CPU && worst < FP64_CPU;
    rows.push([`r${res}-a${alpha}-n${n}`, fmt(eo), fmt(ei), `${fmt(worst)} ${where}`]);
  }
  console.log(table(rows));
  return pass;
}

/** cuda-graphs: graph replays vs eager steps (see the header). */
async function cudaGraphCheck(): Promise<boolean> {
  const STEPS = 6;
  const FLOOR = 1e-5;
  const data = syntheticDataset(32, 64, 3, 9);
  const rows: (string | number)[][] = [['res', 'losses: graph / control', 'G: graph / control', 'D: graph / control', 'G_ema: graph / control', 'captures', 'replays', 'ok']];
  let pass = true;
  const cases = [[8, 'stable', 'auto', FLOOR], [32, 'stable', 'auto', FLOOR], [8, 'fade', 'reference', FLOOR],
    [32, 'fade', 'reference', FLOOR], [8, 'fade', 'auto', 1e-3]] as const;
  for (const [res, phase, impl, floor] of cases) {
    const run = async (cudaGraphs: boolean) => {
      const tr = await Trainer.create({ data, device: 'cuda', seed: 4, cudaGraphs, deterministic: true, network: { preset: 'small', resolution: 32, fmapMax: 32, latentSize: 32, impl }, schedule: { minibatch: 8 } });
      const losses: number[] = [];
      await tr.trainPhase({ resolution: res, phase, images: STEPS * 8, tickImages: 8, onProgress: (p) => { if (p.tickSteps > 0) losses.push(p.dLoss, p.gLoss); } });
      return { losses, g: tr.parameters('generator'), d: tr.parameters('discriminator'), ema: tr.parameters('generatorEma'), graphs: tr.state.cudaGraphs };
    };
    const graph = await run(true);
    const eager = await run(false);
    const control = await run(false);
    const lossError = (a: number[], b: number[]) => a.length !== b.length ? Infinity : Math.max(...a.map((x, i) => scalarError(x, b[i], 0.1)));
    const weightError = (a: NamedTensors, b: NamedTensors) => Math.max(...[...b].map(([k, t]) => (a.has(k) ? relativeError(a.get(k)!, t) : Infinity)));
    const pairs: [number, number][] = [
      [lossError(graph.losses, eager.losses), lossError(control.losses, eager.losses)],
      [weightError(graph.g, eager.g), weightError(control.g, eager.g)],
      [weightError(graph.d, eager.d), weightError(control.d, eager.d)],
      [weightError(graph.ema, eager.ema), weightError(control.ema, eager.ema)],
    ];
    const used = graph.graphs.captures === 1 && graph.graphs.replays === STEPS - 2 && graph.graphs.failure === null;
    const ok = used && graph.losses.length === 2 * STEPS && pairs.every(([e, c]) => e <= Math.max(10 * c, floor));
    pass &&= ok;
    rows.push([`${res}² ${phase} ${impl}`, ...pairs.map(([e, c]) => `${fmt(e)} / ${fmt(c)}`), graph.graphs.captures, graph.graphs.replays,
      ok ? 'ok' : used ? 'FAIL' : `FAIL (graphs not used${graph.graphs.failure ? `: ${graph.graphs.failure}` : ''})`]);
  }
  console.log(`\n== cuda-graphs: ${STEPS} steps per case, graph replays vs eager; bound max(10 × control, ${fmt(FLOOR)}; 1e-3 for the 'auto' fade)`);
  console.log(table(rows));
  return pass;
}

/** cuda-ops: the fused ops one by one on the GPU against their references (see the header). */
function cudaOpsCheck(): boolean {
  type Spec = { op: 'biasLeakyRelu' | 'pixelNorm' | 'upsampleLerp' | 'fadeReals' | 'penalty' | 'convolution'; shapes: number[][]; out: number[]; scalars?: Record<string, number | boolean> };
  const specs: Spec[] = [];
  for (const channelsLast of [false, true]) {
    for (const [n, c, h, w] of [[4, 512, 8, 8], [3, 13, 5, 7], [2, 16, 4, 4], [1, 6, 3, 3], [64, 128, 16, 16]]) {
      specs.push({ op: 'biasLeakyRelu', shapes: [[n, c, h, w], [c]], out: [n, c, h, w], scalars: { channelsLast } });
      specs.push({ op: 'pixelNorm', shapes: [[n, c, h, w]], out: [n, c, h, w], scalars: { channelsLast, epsilon: 1e-8 } });
    }
  }
  for (const [n, c] of [[5, 512], [3, 9]]) {
    specs.push({ op: 'biasLeakyRelu', shapes: [[n, c], [c]], out: [n, c] });
    specs.push({ op: 'pixelNorm', shapes: [[n, c]], out: [n, c], scalars: { epsilon: 1e-4 } });
  }
  for (const [n, c, h] of [[3, 5, 8], [2, 3, 32]]) {
    specs.push({ op: 'upsampleLerp', shapes: [[n, c, h / 2, h / 2], [n, c, h, h]], out: [n, c, h, h], scalars: { alpha: 0.37 } });
    specs.push({ op: 'fadeReals', shapes: [[n, c, h, h]], out: [n, c, h, h], scalars: { alpha: 0.37 } });
    specs.push({ op: 'penalty', shapes: [[n, c, h, h]], out: [n], scalars: { lambda: 10, gamma: 1, k: 1 } });
  }
  // The 3×3 weight gradient as cuBLAS products (weightGradient 'gemm'), in a 3×3 convolution's
  // derivatives: odd sizes, and 64 images of 16² at 128 channels, whose sums run over 20,000 rows.
  for (const channelsLast of [false, true]) {
    for (const [n, cin, cout, h, w] of [[2, 13, 7, 5, 7], [4, 64, 32, 8, 8], [64, 128, 128, 16, 16]]) {
      specs.push({ op: 'convolution', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, h, w],
        scalars: { stride: 1, padding: 1, transposed: false, channelsLast, gemmWeightGrad: true } });
    }
  }
  const BOUND = { float64: 1e-6, float32: 1e-5 } as const;
  const rows: (string | number)[][] = [['op', 'shapes', 'layout', 'float64 vs cpu', 'float32 vs cuda ref', 'ok']];
  let pass = true;
  let seed = 77_000;
  const run = (spec: Spec, impl: Impl, device: Device, inputs: Tensor[], dirs: Tensor[], u: Tensor) => {
    const r = native().opDerivatives({
      op: spec.op, impl, device,
      inputs: inputs.map((t, i) => toNative(t, `input ${i}`)),
      directions: dirs.map((t, i) => toNative(t, `direction ${i}`)),
      gradOutput: toNative(u, 'gradOutput'),
      ...spec.scalars,
    });
    return [r.output, ...r.gradients, ...r.gradientsNoGraph, r.gradOutputSecond, ...r.inputsSecond].map(fromNative);
  };
  for (const spec of specs) {
    const worst: Record<'float64' | 'float32', number> = { float64: 0, float32: 0 };
    for (const dtype of ['float64', 'float32'] as const) {
      const rand = (shape: number[]) => randn(shape, { seed: seed++, dtype });
      const inputs = spec.shapes.map(rand), dirs = spec.shapes.map(rand), u = rand(spec.out);
      const ours = run(spec, 'auto', 'cuda', inputs, dirs, u);
      const ref = run(spec, 'reference', dtype === 'float64' ? 'cpu' : 'cuda', inputs, dirs, u);
      worst[dtype] = Math.max(...ours.map((t, i) => relativeError(t, ref[i], 1e-30)));
    }
    const ok = worst.float64 < BOUND.float64 && worst.float32 < BOUND.float32;
    pass &&= ok;
    rows.push([spec.op, spec.shapes.map((x) => x.join('×')).join(', '), spec.scalars?.channelsLast ? 'NHWC' : spec.shapes[0].length === 2 ? '2-D' : 'NCHW',
      fmt(worst.float64), fmt(worst.float32), ok ? 'ok' : 'FAIL']);
  }
  console.log(`\n== cuda-ops: ours on the GPU vs the reference (float64 on the CPU < ${fmt(BOUND.float64)}, float32 on the GPU < ${fmt(BOUND.float32)}); worst of output, first and second derivatives`);
  console.log(table(rows));
  return pass;
}

async function main() {
  const addon = describeAddon();
  const wanted = arg('device', 'auto');
  const gpu = wanted === 'cpu' ? false : addon.cuda;
  if (wanted === 'cuda' && !gpu) throw new Error(`--device cuda but this addon (${addon.build} build) sees no GPU`);
  console.log(`addon: ${addon.build} build, torch ${addon.torch}, GPU visible to libtorch: ${addon.cuda}; NVIDIA_TF32_OVERRIDE=${process.env.NVIDIA_TF32_OVERRIDE ?? '(unset)'}`);
  const variants: [Device, Impl][] = gpu
    ? [['cuda', 'auto'], ['cuda', 'reference'], ['cpu', 'auto'], ['cpu', 'reference']]
    : [['cpu', 'auto'], ['cpu', 'reference']];
  const rows = { cudaKernels: [] as Row[], cudaVsCpu: [] as Row[], cpuKernels: [] as Row[], conditioning: [] as Row[] };
  const t0 = Date.now();
  let seed = 1000;
  for (const net of NETS) {
    const data = syntheticDataset(net.network.resolution, 8, net.network.channels, 5);
    const trainers = new Map<string, Trainer>();
    for (const [device, impl] of variants) {
      trainers.set(`${device}/${impl}`, await Trainer.create({ data, device, seed: 1, network: { ...net.network, impl } }));
    }
    const first = trainers.get(`${variants[0][0]}/auto`)!;
    for (const c of net.cases) {
      const g = randomWeights(first.parameters('generator'), (seed += 1000));
      const d = randomWeights(first.parameters('discriminator'), seed + 50_000);
      const out = new Map<string, Outcome>();
      for (const [key, tr] of trainers) out.set(key, runCase(tr, g, d, c, net.network.latentSize, net.network.channels, seed + 7));
      const id = `${net.id}-r${c.res}-a${c.alpha}-n${c.n}`;
      rows.cpuKernels.push(compare(id, out.get('cpu/auto')!, out.get('cpu/reference')!));
      if (gpu) {
        rows.cudaKernels.push(compare(id, out.get('cuda/auto')!, out.get('cuda/reference')!));
        rows.cudaVsCpu.push(compare(id, out.get('cuda/auto')!, out.get('cpu/reference')!));
        rows.conditioning.push(compare(id, out.get('cuda/reference')!, out.get('cpu/reference')!));
      }
    }
  }
  console.log(`${NETS.reduce((s, n) => s + n.cases.length, 0)} cases × ${variants.length} trainers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const results: [string, string][] = [];
  if (gpu) {
    results.push(['cuda-kernels-fp32', report('cuda-kernels (cuda/auto vs cuda/reference, fp32)', rows.cudaKernels, SAME_DEVICE, rows.conditioning) ? 'PASS' : 'FAIL']);
    results.push(['cuda-vs-cpu-fp32', report('cuda-vs-cpu (cuda/auto vs cpu/reference, fp32)', rows.cudaVsCpu, CROSS_DEVICE) ? 'PASS' : 'FAIL']);
  } else {
    results.push(['cuda-kernels-fp32', 'NOT RUN: no GPU']);
    results.push(['cuda-vs-cpu-fp32', 'NOT RUN: no GPU']);
  }
  results.push(['cuda-ops', gpu ? (cudaOpsCheck() ? 'PASS' : 'FAIL') : 'NOT RUN: no GPU']);
  results.push(['cuda-graphs', gpu ? ((await cudaGraphCheck()) ? 'PASS' : 'FAIL') : 'NOT RUN: no GPU']);
  results.push(['cuda-fp64', 'NOT RUN: no API (Trainer has no dtype option; Networks with setDtype is CPU-only)']);
  results.push(['cpu-kernels-fp32', report('cpu-kernels (control: cpu/auto vs cpu/reference, fp32)', rows.cpuKernels, SAME_DEVICE) ? 'PASS' : 'FAIL']);
  results.push(['cpu-kernels-fp64', cpuFp64Control() ? 'PASS' : 'FAIL']);
  console.log('');
  for (const [k, v] of results) console.log(`RESULT parity:${k} ${v}`);
  removeTempDir();
  process.exitCode = results.some(([, v]) => v === 'FAIL') ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  console.log(`RESULT parity FAIL: ${(e as Error).message.split('\n')[0]}`);
  removeTempDir();
  process.exitCode = 1;
});
