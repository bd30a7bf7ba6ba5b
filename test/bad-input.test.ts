// Bad input of every kind becomes a JS Error whose message names the problem, and the process
// survives to run the next check (each assertion below runs after the previous failure).
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNetworks, randn, writeSafetensors, native, tensor } from '../lib/index';

const config = { resolution: 16, fmapBase: 128, fmapMax: 16, latentSize: 16 } as const;
const nets = () => createNetworks({ ...config, seed: 11 });

function tempDir(t: { teardown(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-bad-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('shapes, resolution, alpha and batch size are checked with messages naming the problem', (t) => {
  const n = nets();
  t.throws(() => n.discriminator.forward(randn([4, 1, 16, 16], { seed: 1 })), {
    instanceOf: RangeError,
    message: /Expected images of shape \[N, 3, 16, 16\] at resolution 16 but received \[4, 1, 16, 16\] \(this discriminator takes 3-channel images\)/,
  });
  t.throws(() => n.discriminator.forward(randn([4, 3, 8, 8], { seed: 1 })), { message: /\[N, 3, 16, 16\] at resolution 16 but received \[4, 3, 8, 8\]/ });
  t.throws(() => n.generator.forward(randn([2, 15], { seed: 1 })), { instanceOf: RangeError, message: /latents of shape \[N, 16\] but received \[2, 15\]/ });
  t.throws(() => n.generator.forward(randn([16], { seed: 1 })), { message: /latents of shape \[N, 16\] but received \[16\]/ });
  t.throws(() => n.generator.forward(randn([2, 16], { seed: 1 }), { resolution: 12 }), { instanceOf: RangeError, message: /power of two from 4 to 16 for resolution but received 12/ });
  t.throws(() => n.generator.forward(randn([2, 16], { seed: 1 }), { resolution: 32 }), { message: /resolution but received 32/ });
  t.throws(() => n.discriminator.forward(randn([2, 3, 2, 2], { seed: 1 }), { resolution: 2 }), { message: /resolution but received 2/ });
  t.throws(() => n.generator.forward(randn([2, 16], { seed: 1 }), { alpha: 1.5 }), { instanceOf: RangeError, message: /\[0, 1\] for alpha but received 1\.5/ });
  t.throws(() => n.generator.forward(randn([2, 16], { seed: 1 }), { alpha: -0.1 }), { message: /alpha but received -0\.1/ });
  t.throws(() => n.discriminator.forward(randn([2, 3, 16, 16], { seed: 1 }), { alpha: NaN }), { message: /alpha but received NaN/ });
  t.throws(() => n.discriminator.forward(randn([6, 3, 16, 16], { seed: 1 })), {
    instanceOf: RangeError,
    message: /batch size divisible by the minibatch-stddev group size 4 \(or smaller than it\) but received 6/,
  });
  t.throws(() => n.generator.forwardBackward(randn([2, 16], { seed: 1 }), randn([2, 3, 8, 8], { seed: 2 })), { message: /gradOutput of shape \[2, 3, 16, 16\] but received \[2, 3, 8, 8\]/ });
  t.throws(() => n.generator.forward(randn([2, 16], { seed: 1 }), { labels: tensor([1, 0], [2, 1]) }), { message: /unconditional generator/ });
  t.throws(() => createNetworks({ ...config, resolution: 12 }), { message: /power of two from 4 to 1024 for resolution but received 12/ });
  t.throws(() => createNetworks({ ...config, channels: 2 as 3 }), { message: /1 or 3 for channels but received 2/ });
  t.throws(() => createNetworks({ ...config, weightGradient: 'cublas' as 'gemm' }), { message: /'auto', 'library' or 'gemm' for weightGradient but received cublas/ });
  // After all that, the networks still work.
  t.deepEqual([...n.discriminator.forward(randn([8, 3, 16, 16], { seed: 1 })).shape], [8, 1]);
  t.deepEqual([...n.discriminator.forward(randn([3, 3, 16, 16], { seed: 1 })).shape], [3, 1]);
});

test('truncated, foreign and random-byte weight files are refused with the reason', (t) => {
  const dir = tempDir(t);
  const n = nets();
  const good = path.join(dir, 'g.safetensors');
  n.generator.saveWeights(good);
  const before = n.generator.parameters();

  const bytes = fs.readFileSync(good);
  const truncated = path.join(dir, 'truncated.safetensors');
  fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
  t.throws(() => n.generator.loadWeights(truncated), { message: /truncated\.safetensors is not a usable safetensors file: tensor '.*' ends at byte \d+ of a \d+-byte data section \(truncated\)/ });
  const cutHeader = path.join(dir, 'cut-header.safetensors');
  fs.writeFileSync(cutHeader, bytes.subarray(0, 40));
  t.throws(() => n.generator.loadWeights(cutHeader), { message: /header length \d+ exceeds the file/ });
  const tiny = path.join(dir, 'tiny.safetensors');
  fs.writeFileSync(tiny, bytes.subarray(0, 5));
  t.throws(() => n.generator.loadWeights(tiny), { message: /holds only 5 bytes/ });

  const random = path.join(dir, 'random.bin');
  fs.writeFileSync(random, crypto.randomBytes(4096));
  t.throws(() => n.generator.loadWeights(random), { message: /random\.bin is not a usable safetensors file/ });
  const notJson = path.join(dir, 'notjson.bin');
  const hdr = Buffer.alloc(8);
  hdr.writeBigUInt64LE(16n);
  fs.writeFileSync(notJson, Buffer.concat([hdr, crypto.randomBytes(16).fill(0x7b, 0, 1)]));
  t.throws(() => n.generator.loadWeights(notJson), { message: /header is not JSON/ });

  const foreign = path.join(dir, 'foreign.safetensors');
  writeSafetensors(foreign, new Map([['encoder.layer0.weight', randn([4, 4], { seed: 1 })], ['encoder.layer0.bias', randn([4], { seed: 2 })]]));
  t.throws(() => n.generator.loadWeights(foreign), { message: /Cannot load .*foreign\.safetensors into this generator: .*'encoder\.layer0\.(weight|bias)' that this network does not have/ });

  t.throws(() => n.discriminator.loadWeights(good), { message: /holds generator weights, not discriminator weights/ });
  t.throws(() => n.generator.loadWeights(path.join(dir, 'missing.safetensors')), { message: /missing\.safetensors .* cannot be read \(ENOENT\)/ });

  // A partial file (one tensor missing) names the missing tensor.
  const partial = path.join(dir, 'partial.safetensors');
  const params = n.generator.parameters();
  params.delete('torgb_16x16.bias');
  writeSafetensors(partial, params);
  t.throws(() => n.generator.loadWeights(partial), { message: /lack 'torgb_16x16\.bias'/ });

  // Nothing above changed the weights.
  const after = n.generator.parameters();
  for (const [k, v] of before) t.deepEqual(after.get(k)!.data, v.data, `${k} changed by a failed load`);
  n.generator.loadWeights(good);
});

test('weights of a different architecture (other fmapMax) are refused, naming the tensor and shapes', (t) => {
  const dir = tempDir(t);
  const other = createNetworks({ ...config, fmapMax: 8, seed: 2 });
  const file = path.join(dir, 'other.safetensors');
  other.discriminator.saveWeights(file);
  const n = nets();
  t.throws(() => n.discriminator.loadWeights(file), {
    message: /Cannot load .*other\.safetensors into this discriminator: Expected shape \[\d+(, \d+)*\] for '[\w.]+' but the weights hold \[\d+(, \d+)*\]: they were saved from a different architecture/,
  });
  const otherRes = createNetworks({ ...config, resolution: 8, seed: 2 });
  const small = path.join(dir, 'res8.safetensors');
  otherRes.generator.saveWeights(small);
  t.throws(() => n.generator.loadWeights(small), { message: /lack '.*16x16.*'.*different architecture/ });
  t.deepEqual([...n.discriminator.forward(randn([4, 3, 16, 16], { seed: 3 })).shape], [4, 1]);
});

test('C++ TORCH_CHECK failures reach JS as Errors (raw binding, no TS checks) and the process survives', (t) => {
  const n = nets();
  const pair = new (native().Networks)(n.config, 1);
  const err = t.throws(() => pair.forward('discriminator', { dtype: 'float32', shape: [1, 5, 4, 4], data: new Float32Array(80) }, 4, 1, null), {
    instanceOf: Error,
    message: /Expected images of shape \[N, 3, 4, 4\] but received \[1, 5, 4, 4\]/,
  });
  t.log(`C++ error message: ${err.message}`);
  t.false(/Exception raised from|frame #\d/.test(err.message), 'the message should carry no C++ backtrace');
  t.throws(() => pair.forward('discriminator', { dtype: 'float32', shape: [6, 3, 4, 4], data: new Float32Array(288) }, 4, 1, null), {
    message: /divisible by the minibatch-stddev group size 4 but received 6/,
  });
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, 16], data: new Float32Array(32) }, 12, 1, null), { message: /power of two .* received 12/ });
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, 16], data: new Float32Array(32) }, 16, 1.5, null), { message: /alpha in \[0, 1\] but received 1\.5/ });
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, 15], data: new Float32Array(30) }, 16, 1, null), { message: /latents of shape \[N, 16\] but received \[2, 15\]/ });
  t.throws(() => pair.forward('mapping' as 'generator', { dtype: 'float32', shape: [1, 3, 4, 4], data: new Float32Array(48) }, 4, 1, null), { message: /'generator' or 'discriminator' but received 'mapping'/ });
  t.throws(() => pair.forward('generator', { dtype: 'float64', shape: [2, 16], data: new Float64Array(32) }, 16, 1, null), { message: /Expected a [Ff]loat input but received [Dd]ouble/ });
  t.throws(() => pair.setParameters('generator', [['b4x4_conv.weight', { dtype: 'float32', shape: [1], data: new Float32Array(1) }]]), { message: /Expected shape \[16, 16, 3, 3\] for 'b4x4_conv\.weight'/ });
  t.throws(() => pair.setDtype('float16' as 'float32'), { message: /float32 or float64 but received float16/ });
  t.throws(
    () => pair.forwardBackward('discriminator', { dtype: 'float32', shape: [4, 3, 4, 4], data: new Float32Array(192) }, 4, 1, null, { dtype: 'float32', shape: [4, 2], data: new Float32Array(8) }),
    { message: /gradOutput of shape \[4, 1\] but received \[4, 2\]/ },
  );
  // Still alive and computing.
  t.deepEqual(pair.forward('discriminator', { dtype: 'float32', shape: [4, 3, 4, 4], data: new Float32Array(192) }, 4, 1, null).shape, [4, 1]);
});
