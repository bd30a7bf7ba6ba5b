// Fused ops against their references (native/ops), fused-scale convolutions against the plain
// upsample/conv and conv/pool, and our convolution (direct and Winograd), leaky ReLU, bias + leaky
// ReLU, pixel norm, matrix product and minibatch stddev against ATen's: forward, first derivatives and
// second derivatives (the double backward the gradient penalty takes through D), on random shapes
// including odd sizes and batch 1.
// Bounds: max relative error < 1e-6 in float64 and < 1e-5 in float32.
import test from 'ava';
import { native } from '../lib/native';
import { Tensor, fromNative, randn, toNative } from '../lib/tensor';
import { relativeError, toFloat64 } from './helpers/compare';

type Dtype = 'float32' | 'float64';
type Op = 'upsampleLerp' | 'fadeReals' | 'penalty' | 'upsampleConv' | 'convDownsample' | 'convolution' | 'winogradConvolution' | 'leakyRelu' | 'biasLeakyRelu' | 'pixelNorm' | 'matrixProduct' | 'minibatchStddev';
const BOUND: Record<Dtype, number> = { float32: 1e-5, float64: 1e-6 };

let seed = 1000;
const rand = (shape: number[], dtype: Dtype) => randn(shape, { seed: seed++, dtype });
// The parity tests draw from their own seeds, so a test's inputs are the same whether it runs alone
// (ava --match) or after the others.
const FIRST_SEED: Record<Dtype, number> = { float64: 1_000_000, float32: 2_000_000 };

interface Case {
  op: Op;
  shapes: number[][];
  out: number[];
  only?: Dtype; // compared in this dtype only
  scalars?: { epsilon?: number; group?: number; parts?: number; atenKernels?: boolean; alpha?: number; lambda?: number; gamma?: number; k?: number; stride?: number; padding?: number; transposed?: boolean; channelsLast?: boolean; channelsLastInput?: boolean; gemmWeightGrad?: boolean; alphaOnDevice?: boolean; weightScale?: number; scale?: number };
}

// Odd batch and channel counts everywhere; odd spatial sizes where the op allows them (the fade ops
// work on the even sizes of the resolution pyramid; the convolutions take any size).
function cases(): Case[] {
  const out: Case[] = [];
  // A pixel norm of one channel is x/√(x² + ε) ≈ sign(x): its true derivatives are ε/|x|³-small and
  // both sides compute them as differences of O(1/|x|) terms, so in float32 they compare rounding
  // noise (5e-1 relative seen); in float64 they agree within the bound.
  const oneChannel = (c: number): { only?: Dtype } => (c === 1 ? { only: 'float64' } : {});
  for (const [n, c, h] of [[1, 3, 4], [3, 5, 8], [2, 7, 6], [5, 1, 16]]) {
    // alphaOnDevice: α as a 0-dim tensor, which a step recorded as a CUDA graph blends with.
    for (const alpha of [0, 0.37, 1]) for (const alphaOnDevice of [false, true]) {
      out.push({ op: 'upsampleLerp', shapes: [[n, c, h / 2, h / 2], [n, c, h, h]], out: [n, c, h, h], scalars: { alpha, alphaOnDevice } });
      out.push({ op: 'fadeReals', shapes: [[n, c, h, h]], out: [n, c, h, h], scalars: { alpha, alphaOnDevice } });
    }
    out.push({ op: 'penalty', shapes: [[n, c, h, h]], out: [n], scalars: { lambda: 10, gamma: 1, k: 1 } });
    out.push({ op: 'penalty', shapes: [[n, c, h, h]], out: [n], scalars: { lambda: 10, gamma: 750, k: 8 } });
  }
  // Fused-scale (ours) against unfused (reference), the fused side also channels-last and with an
  // equalized-LR scale folded into its kernel (the reference multiplies the weight by it first).
  for (const channelsLast of [false, true]) for (const weightScale of [1, 0.37]) {
    for (const [n, cin, cout, h, w] of [[1, 3, 5, 4, 4], [3, 4, 2, 5, 7], [2, 6, 3, 8, 8], [1, 1, 1, 3, 3], [1, 17, 18, 3, 3]]) {
      out.push({ op: 'upsampleConv', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, 2 * h, 2 * w], scalars: { channelsLast, weightScale } });
    }
    for (const [n, cin, cout, h, w] of [[1, 3, 5, 4, 4], [3, 4, 2, 6, 10], [2, 6, 3, 5, 7], [1, 1, 1, 2, 2], [1, 18, 17, 4, 4]]) {
      out.push({ op: 'convDownsample', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, Math.floor(h / 2), Math.floor(w / 2)], scalars: { channelsLast, weightScale } });
    }
  }
  // Our convolution (layers/convolution.cpp) against ATen's with ATen's own derivatives: every
  // geometry the networks use (3×3 and 1×1 same-size, the fused-scale stride-2 4×4 and its
  // transposed twin), in NCHW and channels-last layout (ATen's reference takes the NCHW tensors), with
  // the kernel scaled and laid out by scaledKernel as a layer does (ATen's reference scales it first).
  // The 1×1 ones (layers/pointwise_convolution.h) run NCHW with a side of at most 4 channels on the
  // narrow loops (layers/narrow_product.h: 4→2, 3→5, 20→3, grey 1→7 on a 5×3 image, 4→9 and 9→4
  // on 17×17 images, which pass the loops' 256-pixel blocks, and 3→130 and 130→3, whose 130
  // channels pass a channels-last wide side's 64-channel blocks and 16-lane sums), in both layouts;
  // the others (6→5) as batched products (NCHW) or one product (channels-last).
  for (const channelsLast of [false, true]) for (const weightScale of [1, 0.37]) for (const [n, cin, cout, h, w, k, stride, padding, transposed] of [
    [1, 3, 5, 5, 4, 3, 1, 1, false], [3, 4, 2, 5, 7, 1, 1, 0, false], [2, 3, 4, 7, 6, 4, 2, 1, false],
    [2, 3, 4, 3, 5, 4, 2, 1, true], [1, 1, 1, 2, 2, 3, 1, 1, false], [1, 2, 3, 1, 1, 4, 2, 1, true],
    [2, 3, 5, 17, 17, 1, 1, 0, false], [2, 20, 3, 17, 18, 1, 1, 0, false], [1, 1, 7, 5, 3, 1, 1, 0, false],
    [2, 4, 9, 17, 17, 1, 1, 0, false], [1, 9, 4, 17, 17, 1, 1, 0, false], [2, 6, 5, 4, 3, 1, 1, 0, false],
    [2, 3, 130, 5, 6, 1, 1, 0, false], [2, 130, 3, 6, 5, 1, 1, 0, false],
  ] as [number, number, number, number, number, number, number, number, boolean][]) {
    const size = (s: number) => (transposed ? (s - 1) * stride - 2 * padding + k : Math.floor((s + 2 * padding - k) / stride) + 1);
    const weight = transposed ? [cin, cout, k, k] : [cout, cin, k, k];
    out.push({ op: 'convolution', shapes: [[n, cin, h, w], weight, [cout]], out: [n, cout, size(h), size(w)], scalars: { stride, padding, transposed, channelsLast, weightScale } });
    // A channels-last network's activations arrive channels-last (its images NCHW, as above).
    if (channelsLast && k === 1) {
      out.push({ op: 'convolution', shapes: [[n, cin, h, w], weight, [cout]], out: [n, cout, size(h), size(w)], scalars: { stride, padding, transposed, channelsLast, weightScale, channelsLastInput: true } });
    }
  }
  // The 3×3 weight gradient as nine matrix products over the padded activations
  // (layers/gemm_weight_grad.h, `weightGradient: 'gemm'`): odd sizes, a 1-pixel-high image, 2×2
  // images (whose taps mostly fall on the padding), batch 1, both layouts, a scaled kernel.
  for (const channelsLast of [false, true]) for (const weightScale of [1, 0.37]) for (const [n, cin, cout, h, w] of [
    [1, 3, 5, 5, 4], [3, 6, 4, 7, 9], [2, 5, 7, 1, 3], [1, 2, 2, 2, 2], [2, 17, 33, 3, 6],
  ]) {
    out.push({ op: 'convolution', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, h, w], scalars: { stride: 1, padding: 1, transposed: false, channelsLast, weightScale, gemmWeightGrad: true } });
  }
  // The Winograd F(2×2, 3×3) kernels (layers/winograd.cpp) against ATen's direct convolution: odd
  // and even sizes (partial 2×2 tiles at the right and bottom edges), a 1-pixel-high image, batch 1,
  // 40→24 channels at 8², whose 16 float32 products run on oneDNN, and 2 images of 63×64 at 3→130
  // channels whose transform-domain buffers (1,024 tiles × 130 channels × 16 points, 8.5 MB per
  // image) take one pass per image.
  for (const [n, cin, cout, h, w] of [[1, 3, 5, 5, 4], [3, 6, 4, 7, 9], [2, 5, 7, 1, 3], [1, 2, 2, 2, 2], [1, 17, 33, 3, 6], [2, 40, 24, 8, 8], [2, 3, 130, 63, 64]]) {
    out.push({ op: 'winogradConvolution', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, h, w] });
  }
  // A channels-last input, as a channels-last network's activations arrive: the result stays channels-last.
  for (const [n, cin, cout, h, w] of [[2, 5, 7, 6, 5], [1, 17, 33, 3, 6]]) {
    out.push({ op: 'winogradConvolution', shapes: [[n, cin, h, w], [cout, cin, 3, 3], [cout]], out: [n, cout, h, w], scalars: { channelsLast: true } });
  }
  // Our leaky ReLU (layers/leaky_relu.cpp, whose second derivative in x is "none") against ATen's.
  for (const shape of [[1, 1, 1, 1], [3, 5, 4, 7], [2, 9]]) out.push({ op: 'leakyRelu', shapes: [shape], out: shape });
  // Bias + leaky ReLU in one pass (ops/bias_leaky_relu.h) against ATen's add and leaky_relu, and the
  // pixel norm's kernels (ops/pixel_norm.h) against its ATen composite: NCHW and channels-last
  // inputs (the GPU's layout), odd sizes, batch 1, 2-D inputs (G's dense layer, the latents), channel
  // counts that do and do not divide by 4 (the CUDA kernels' 16-byte paths), 17×17 images whose
  // 289 pixels cross the CPU kernel's 256-pixel blocks, and the ε of half precision.
  for (const channelsLast of [false, true]) {
    for (const [n, c, h, w] of [[1, 1, 1, 1], [3, 5, 4, 7], [2, 8, 3, 3], [1, 12, 17, 17], [4, 7, 2, 2]]) {
      // The output scale s of lrelu(s·y + b), which the CPU's Winograd layers pass (their equalized-LR scale).
      for (const scale of [1, 0.37]) out.push({ op: 'biasLeakyRelu', shapes: [[n, c, h, w], [c]], out: [n, c, h, w], scalars: { channelsLast, scale } });
      for (const epsilon of [1e-8, 1e-4]) out.push({ op: 'pixelNorm', shapes: [[n, c, h, w]], out: [n, c, h, w], scalars: { channelsLast, epsilon }, ...oneChannel(c) });
    }
  }
  for (const [n, c] of [[2, 9], [3, 16], [1, 1]]) {
    out.push({ op: 'biasLeakyRelu', shapes: [[n, c], [c]], out: [n, c], scalars: { scale: 0.37 } });
    out.push({ op: 'pixelNorm', shapes: [[n, c]], out: [n, c], scalars: { epsilon: 1e-8 }, ...oneChannel(c) });
  }
  // Our matrix product (layers/matrix_product.cpp) against ATen's mm: skinny products that take the
  // swapped order (output rows < columns, output smaller than an operand) and the direct one, with the
  // second factor stored as is or transposed (a dense layer's weight, whose gradient keeps that
  // layout); the last three (and their derivatives) are products of over 2²⁰ multiply-adds, which
  // float32 computes with oneDNN, the others with MKL.
  for (const [m, k, n] of [[3, 5, 40], [2, 33, 7], [40, 3, 5], [1, 1, 1], [4, 6, 6], [5, 1031, 1019], [3, 2053, 517], [1031, 4, 1021]]) {
    out.push({ op: 'matrixProduct', shapes: [[m, k], [k, n]], out: [m, n] });
    out.push({ op: 'matrixProduct', shapes: [[m, k], [n, k]], out: [m, n], scalars: { transposed: true } });
  }
  // Minibatch stddev with closed-form derivatives against the composite of ATen ops: groups of 4 and
  // 3, several groups per part, two stacked parts (D's reals and fakes), a group of one, odd sizes,
  // and 640 features a sample (the CPU loops' 512-column blocks and their partial sums). Each closed
  // form twice: the CPU loops (layers/minibatch_stddev.cpp) and the ATen ops other devices run.
  for (const atenKernels of [false, true]) for (const [n, c, h, w, group, parts] of [[8, 3, 4, 4, 4, 1], [12, 5, 3, 2, 3, 1], [16, 2, 4, 4, 4, 2], [3, 7, 1, 1, 4, 1], [2, 3, 2, 2, 1, 2], [16, 40, 4, 4, 4, 2]]) {
    out.push({ op: 'minibatchStddev', shapes: [[n, c, h, w]], out: [n, c + 1, h, w], scalars: { group, parts, atenKernels } });
  }
  // A group of two only in float64: its stddev |x₁ − x₂|/2 is piecewise linear, so the true second
  // derivative in x is ε/σ³-small and both sides compute it as a difference of O(1/σ) terms; in
  // float32 that compares rounding noise (2e-2 relative seen), in float64 it agrees to 1e-11.
  for (const atenKernels of [false, true]) {
    out.push({ op: 'minibatchStddev', shapes: [[12, 5, 3, 2]], out: [12, 6, 3, 2], scalars: { group: 2, parts: 1, atenKernels }, only: 'float64' });
  }
  return out;
}

function run(c: Case, impl: 'auto' | 'reference', inputs: Tensor[], dirs: Tensor[], u: Tensor) {
  const r = native().opDerivatives({
    op: c.op,
    impl,
    inputs: inputs.map((t, i) => toNative(t, `input ${i}`)),
    directions: dirs.map((t, i) => toNative(t, `direction ${i}`)),
    gradOutput: toNative(u, 'gradOutput'),
    ...c.scalars,
  });
  return {
    outputChannelsLast: r.outputChannelsLast,
    output: fromNative(r.output),
    gradients: r.gradients.map(fromNative),
    gradientsNoGraph: r.gradientsNoGraph.map(fromNative),
    gradOutputSecond: fromNative(r.gradOutputSecond),
    inputsSecond: r.inputsSecond.map(fromNative),
  };
}

for (const dtype of ['float64', 'float32'] as const) {
  test(`fused ops and fused-scale convolutions match their references (${dtype}): forward, first and second derivatives`, (t) => {
    const failures: string[] = [];
    const worst = new Map<Op, { err: number; where: string }>();
    let compared = 0;
    let caseSeed = FIRST_SEED[dtype];
    const draw = (shape: number[]) => randn(shape, { seed: caseSeed++, dtype });
    for (const c of cases().filter((x) => !x.only || x.only === dtype)) {
      // A penalty needs non-zero gradients to be meaningful; random inputs give them.
      const inputs = c.shapes.map(draw);
      const dirs = c.shapes.map(draw);
      const u = draw(c.out);
      const fast = run(c, 'auto', inputs, dirs, u);
      const ref = run(c, 'reference', inputs, dirs, u);
      const id = `${c.op} [${c.shapes.map((s) => s.join('×')).join(', ')}] ${JSON.stringify(c.scalars ?? {})}`;
      // The layout flag takes effect (where NHWC and NCHW differ: several channels and pixels).
      const [, cout, oh, ow] = c.out;
      const convolves = c.op === 'convolution' || c.op === 'upsampleConv' || c.op === 'convDownsample' || c.op === 'winogradConvolution';
      if (convolves && cout > 1 && oh * ow > 1 && fast.outputChannelsLast !== Boolean(c.scalars?.channelsLast)) {
        failures.push(`${id}: output ${fast.outputChannelsLast ? 'is' : 'is not'} channels-last`);
      }
      const pairs: [string, Tensor, Tensor][] = [
        ['output', fast.output, ref.output],
        ...fast.gradients.map((g, i) => [`∂/∂x${i}`, g, ref.gradients[i]] as [string, Tensor, Tensor]),
        ...fast.gradientsNoGraph.map((g, i) => [`∂/∂x${i} (no graph)`, g, ref.gradients[i]] as [string, Tensor, Tensor]),
        ['∂²/∂u (double backward)', fast.gradOutputSecond, ref.gradOutputSecond],
        ...fast.inputsSecond.map((g, i) => [`∂²/∂x${i}`, g, ref.inputsSecond[i]] as [string, Tensor, Tensor]),
      ];
      for (const [what, a, b] of pairs) {
        const err = relativeError(a, b, 1e-30);
        compared++;
        const w = worst.get(c.op) ?? { err: 0, where: '' };
        if (err > w.err || !worst.has(c.op)) worst.set(c.op, { err, where: `${id} ${what}` });
        if (!(err < BOUND[dtype])) failures.push(`${id} ${what}: relative error ${err}`);
      }
    }
    for (const [op, w] of worst) t.log(`${dtype} ${op}: max relative error ${w.err.toExponential(2)} (${w.where})`);
    t.log(`${compared} tensors compared, bound ${BOUND[dtype]}, inputs from seeds ${FIRST_SEED[dtype]}–${caseSeed - 1}`);
    t.deepEqual(failures, []);
  });
}

test('the double backward through the fused ops is not trivially zero', (t) => {
  // Guards the test above: if second derivatives were all zero on both sides it would pass vacuously.
  const c = cases().find((x) => x.op === 'upsampleConv')!;
  const inputs = c.shapes.map((s) => rand(s, 'float64'));
  const r = run(c, 'auto', inputs, c.shapes.map((s) => rand(s, 'float64')), rand(c.out, 'float64'));
  const norm = (x: Tensor) => Math.sqrt((x.data as Float64Array).reduce((a, v) => a + v * v, 0));
  t.log(`‖∂²/∂u‖ ${norm(r.gradOutputSecond).toFixed(3)}, ‖∂²/∂w‖ ${norm(r.inputsSecond[1]).toFixed(3)}`);
  t.true(norm(r.gradOutputSecond) > 0 && norm(r.inputsSecond[1]) > 0);
  const p = cases().find((x) => x.op === 'penalty')!;
  const pr = run(p, 'auto', p.shapes.map((s) => rand(s, 'float64')), p.shapes.map((s) => rand(s, 'float64')), rand(p.out, 'float64'));
  t.true(norm(pr.inputsSecond[0]) > 0, 'the penalty has a non-zero second derivative in its input');
});

test('minibatch stddev keeps float32 accuracy where the spread is small against the values', (t) => {
  // D's activations can sit far from zero with a small spread across a group (σ ≪ |x|): there the
  // float32 mean's rounding shifts every deviation alike, and the derivatives' 1/σ and 1/σ³ amplify
  // that shift. Both our kernels (CPU loops, ATen ops) against the float64 reference on the same
  // float32-rounded inputs, bound 1e-6 (ATen's float32 composite, logged beside them, reads ~1e-7;
  // a one-pass deviation read 2e-4 in the second derivative here).
  const shape = [12, 40, 4, 4];
  const out = [12, 41, 4, 4];
  const asFloat32 = (x: Tensor) => new Tensor(Float32Array.from(x.data as Float64Array), x.shape, 'float32');
  const spreadOut = (x: Tensor, offset: number, spread: number) => new Tensor((x.data as Float64Array).map((v) => offset + spread * v), x.shape, 'float64');
  let seed = 3_000_000;
  const failures: string[] = [];
  for (const [offset, spread] of [[4, 0.02], [-3, 0.005], [0, 1]]) {
    const x = asFloat32(spreadOut(randn(shape, { seed: seed++, dtype: 'float64' }), offset, spread));
    const dir = asFloat32(randn(shape, { seed: seed++, dtype: 'float64' }));
    const u = asFloat32(randn(out, { seed: seed++, dtype: 'float64' }));
    const c: Case = { op: 'minibatchStddev', shapes: [shape], out, scalars: { group: 4, parts: 1, atenKernels: false } };
    const truth = run(c, 'reference', [toFloat64(x)], [toFloat64(dir)], toFloat64(u));
    const errors = (r: ReturnType<typeof run>) => ({
      output: relativeError(toFloat64(r.output), truth.output),
      first: relativeError(toFloat64(r.gradients[0]), truth.gradients[0]),
      second: relativeError(toFloat64(r.inputsSecond[0]), truth.inputsSecond[0]),
    });
    const composite = errors(run(c, 'reference', [x], [dir], u));
    for (const atenKernels of [false, true]) {
      const e = errors(run({ ...c, scalars: { ...c.scalars, atenKernels } }, 'auto', [x], [dir], u));
      const name = `offset ${offset}, spread ${spread}, ${atenKernels ? 'ATen ops' : 'CPU loops'}`;
      t.log(`${name}: output ${e.output.toExponential(2)}, ∂/∂x ${e.first.toExponential(2)}, ∂²/∂x ${e.second.toExponential(2)} (ATen composite ${composite.output.toExponential(2)}, ${composite.first.toExponential(2)}, ${composite.second.toExponential(2)})`);
      for (const [what, err] of Object.entries(e)) if (!(err < 1e-6)) failures.push(`${name} ${what}: ${err}`);
    }
  }
  t.deepEqual(failures, []);
});

test('ops reject malformed inputs with clear errors', (t) => {
  const x = rand([2, 3, 4, 4], 'float32');
  const call = (op: Op, inputs: Tensor[], out: number[]) =>
    native().opDerivatives({
      op,
      impl: 'auto',
      inputs: inputs.map((i) => toNative(i, 'x')),
      directions: inputs.map((i) => toNative(i, 'v')),
      gradOutput: toNative(rand(out, 'float32'), 'u'),
      alpha: 0.5,
      epsilon: 1e-8,
    });
  t.throws(() => call('upsampleLerp', [x, x], [2, 3, 4, 4]), { message: /upsampleLerp: low .* must be high .* at half the size/ });
  t.throws(() => call('fadeReals', [rand([2, 3, 5, 5], 'float32')], [2, 3, 5, 5]), { message: /fadeReals: expected \[N, C, H, W\] with even H, W/ });
  t.throws(() => call('biasLeakyRelu', [x, rand([4], 'float32')], [2, 3, 4, 4]), { message: /biasLeakyRelu expects y of shape \[N, C\] or \[N, C, H, W\] and a bias of shape \[C\] but received \[2, 3, 4, 4\] and \[4\]/ });
  t.throws(() => call('pixelNorm', [rand([2, 3, 4], 'float32')], [2, 3, 4]), { message: /pixelNorm expects a tensor of shape \[N, C\] or \[N, C, H, W\] but received \[2, 3, 4\]/ });
});
