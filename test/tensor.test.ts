// tensor()/randn()/toFloat32Array and the crossing to C++ and back: exact, and loud about bad input.
import test from 'ava';
import { createNetworks, randn, tensor, Tensor, native } from '../lib/index';

const tiny = () => createNetworks({ resolution: 8, fmapBase: 64, fmapMax: 8, latentSize: 8, seed: 3 });

test('tensor() keeps dtype, shape and values; toFloat32Array copies', (t) => {
  const f = tensor([1.5, -2, 3.25, 0], [2, 2]);
  t.is(f.dtype, 'float32');
  t.deepEqual([...f.shape], [2, 2]);
  t.deepEqual([...f.data], [1.5, -2, 3.25, 0]);
  const copy = f.toFloat32Array();
  copy[0] = 99;
  t.is(f.data[0], 1.5, 'toFloat32Array must return a copy');
  const d = tensor(new Float64Array([0.1, 1e-300]), [2]);
  t.is(d.dtype, 'float64');
  t.deepEqual([...d.toFloat32Array()], [Math.fround(0.1), 0]);
  t.is(tensor(new Int32Array([7]), [1]).dtype, 'int32');
  t.deepEqual([...tensor(new BigInt64Array([5n, -6n]), [2]).toFloat32Array()], [5, -6]);
  t.is(tensor([], [0, 3]).size, 0);
});

test('randn is seeded and reproducible, standard normal, in both dtypes', (t) => {
  const a = randn([4096], { seed: 42 });
  const b = randn([4096], { seed: 42 });
  const c = randn([4096], { seed: 43 });
  t.deepEqual(a.data, b.data);
  t.notDeepEqual(a.data, c.data);
  const d = randn([2, 3, 5], { seed: 1, dtype: 'float64' });
  t.is(d.dtype, 'float64');
  t.deepEqual([...d.shape], [2, 3, 5]);
  t.true(d.data instanceof Float64Array);
  const x = a.data as Float32Array;
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  t.log(`randn(4096): mean ${mean.toFixed(4)}, std ${std.toFixed(4)}`);
  t.true(Math.abs(mean) < 0.06 && Math.abs(std - 1) < 0.05, `mean ${mean}, std ${std}`);
});

test('parameters survive setParameters → parameters bit-exactly (float32 and float64), incl. extreme and subnormal values', (t) => {
  for (const dtype of ['float32', 'float64'] as const) {
    const n = tiny();
    n.setDtype(dtype);
    const params = n.generator.parameters();
    let k = 0;
    const values = new Map<string, Tensor>();
    for (const [name, p] of params) {
      const Arr = dtype === 'float32' ? Float32Array : Float64Array;
      const data = new Arr(p.size);
      for (let i = 0; i < data.length; i++) data[i] = ((k++ * 2654435761) % 1000003) / 7919 - 63.1 + (i % 7 === 0 ? 1e-30 : 0);
      if (data.length > 2) {
        data[0] = dtype === 'float32' ? 3.4028234663852886e38 : Number.MAX_VALUE;
        data[1] = dtype === 'float32' ? 1.401298464324817e-45 : 5e-324; // subnormal minimum
      }
      values.set(name, new Tensor(data, p.shape, dtype));
    }
    n.generator.setParameters(values);
    const back = n.generator.parameters();
    for (const [name, v] of values) {
      const b = back.get(name)!;
      t.is(b.dtype, dtype, name);
      t.deepEqual([...b.shape], [...v.shape], name);
      t.deepEqual(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength), `${name} (${dtype}) not bit-exact`);
    }
  }
});

test('forward output has the right dtype/shape and is deterministic; float64 input into a float32 net is refused', (t) => {
  const n = tiny();
  const z = randn([3, 8], { seed: 5 });
  const a = n.generator.forward(z, { resolution: 8 });
  const b = n.generator.forward(z, { resolution: 8 });
  t.deepEqual([...a.shape], [3, 3, 8, 8]);
  t.is(a.dtype, 'float32');
  t.deepEqual(a.data, b.data);
  t.throws(() => n.generator.forward(randn([3, 8], { seed: 5, dtype: 'float64' })), { message: /float32 tensor for the generator input but received float64/ });
});

test('wrong length, negative or non-integer dims, non-numbers → errors naming the argument', (t) => {
  t.throws(() => tensor([1, 2, 3], [2, 2]), { instanceOf: RangeError, message: /Expected 4 elements .*\[2, 2\].* received 3/ });
  t.throws(() => tensor(new Float32Array(5), [2, 2]), { message: /Expected 4 elements/ });
  t.throws(() => tensor([1, 2], [-2, -1]), { instanceOf: RangeError, message: /non-negative integer dimensions for shape but dimension 0 is -2/ });
  t.throws(() => tensor([1, 2], [2.5]), { message: /non-negative integer dimensions for shape but dimension 0 is 2\.5/ });
  t.throws(() => tensor([1, 2], [NaN]), { message: /dimension 0 is NaN/ });
  t.throws(() => tensor([1, 'x' as unknown as number], [2], 'latents'), { instanceOf: TypeError, message: /numbers in latents but element 1 is string/ });
  t.throws(() => tensor(new Uint16Array(2) as unknown as Float32Array, [2], 'weights'), { message: /typed array for weights/ });
  t.throws(() => randn([2, -1]), { message: /dimension 1 is -1/ });
  t.throws(() => randn([2, 1.5]), { message: /dimension 1 is 1\.5/ });
  t.throws(() => randn([2], { seed: -1 }), { message: /non-negative integer for seed/ });
  t.throws(() => randn([2], { seed: 0.5 }), { message: /seed but received 0\.5/ });
});

test('NaN or infinite latents/images → errors naming the argument and the element', (t) => {
  const n = tiny();
  const z = randn([2, 8], { seed: 1 });
  (z.data as Float32Array)[5] = NaN;
  t.throws(() => n.generator.forward(z), { instanceOf: RangeError, message: /finite values in latents but element 5 is NaN/ });
  const img = randn([1, 3, 4, 4], { seed: 2 });
  (img.data as Float32Array)[7] = Infinity;
  t.throws(() => n.discriminator.forward(img, { resolution: 4 }), { message: /finite values in images but element 7 is Infinity/ });
  t.throws(() => n.generator.forwardBackward(z, randn([2, 3, 8, 8], { seed: 3 })), { message: /latents but element 5 is NaN/ });
});

test('the native side rejects malformed tensors itself (bypassing the TS checks), naming the argument', (t) => {
  const n = tiny();
  const pair = new (native().Networks)(n.config, 1);
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, 8], data: new Float32Array(15) }, 8, 1, null), {
    message: /Expected 16 elements for input/,
  });
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, -8], data: new Float32Array(16) }, 8, 1, null), {
    message: /non-negative integer dimensions for input/,
  });
  t.throws(() => pair.forward('generator', { dtype: 'float32', shape: [2, 8.5], data: new Float32Array(17) }, 8, 1, null), {
    message: /non-negative integer dimensions for input/,
  });
  t.throws(() => pair.forward('generator', { dtype: 'float64', shape: [2, 8], data: new Float32Array(16) }, 8, 1, null), {
    message: /data of input does not match its dtype float64/,
  });
  t.throws(() => pair.forward('generator', { dtype: 'float16' as 'float32', shape: [2, 8], data: new Float32Array(16) }, 8, 1, null), {
    message: /dtype .* for input but received float16/,
  });
  // and the process is still fine
  t.is(pair.forward('generator', { dtype: 'float32', shape: [2, 8], data: new Float32Array(16) }, 8, 1, null).shape.join(), '2,3,8,8');
});
