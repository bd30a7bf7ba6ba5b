// Exact resume: training N steps, saving, resuming and training N more equals 2N straight steps bit
// for bit on CPU, across the start of a fade (and, from a mid-fade checkpoint, across its end and the
// Adam reset there). The checkpoint also loads in Python's safetensors with the names and shapes we
// wrote (safetensors installed offline into the git-ignored .pydeps/).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { prepareDataset } from '../lib/dataset';
import { readSafetensors, type NamedTensors } from '../lib/safetensors';
import { readCheckpoint, writeCheckpoint } from '../lib/train/checkpoint';
import { Trainer, type TrainerState } from '../lib/train/trainer';
import type { TrainingOptionsInput } from '../lib/train/options';

const repoRoot = path.resolve(__dirname, '..');
const PYDEPS = path.join(repoRoot, '.pydeps');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-resume-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

async function makeDataset(): Promise<string> {
  const images = path.join(dir, 'images');
  fs.mkdirSync(images);
  let s = 12345;
  for (let i = 0; i < 16; i++) {
    const px = Buffer.alloc(16 * 16 * 3);
    for (let j = 0; j < px.length; j++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      px[j] = s >>> 24;
    }
    await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(images, `${i}.png`));
  }
  const data = path.join(dir, 'data.pgds');
  await prepareDataset({ input: images, output: data, resolution: 16 });
  return data;
}

// Stable 64 images, fade 64 images, minibatch 8: 4×4 stable for steps 1-9 (the step at 64 images is
// still at lod 2), 8×8 fades in over steps 10-16, stable 8×8 from step 17 (Adam resets at both ends).
const options = (data: string): TrainingOptionsInput => ({
  data,
  network: { preset: 'small', resolution: 16, fmapMax: 32, latentSize: 32 },
  schedule: { stableKimg: 0.064, fadeKimg: 0.064, minibatch: 8 },
  mirror: true,
  seed: 1,
});

const NETS = ['generator', 'discriminator', 'generatorEma'] as const;

interface Snapshot {
  params: Record<(typeof NETS)[number], NamedTensors>;
  state: TrainerState;
}

function snapshot(t: Trainer): Snapshot {
  return {
    params: { generator: t.parameters('generator'), discriminator: t.parameters('discriminator'), generatorEma: t.parameters('generatorEma') },
    state: t.state,
  };
}

/** Tensors that are not byte-identical, with the largest absolute difference. */
function diffParams(a: Snapshot, b: Snapshot): { compared: number; bytes: number; different: string[] } {
  const different: string[] = [];
  let compared = 0;
  let bytes = 0;
  for (const net of NETS) {
    const x = a.params[net];
    const y = b.params[net];
    if (x.size !== y.size) different.push(`${net}: ${x.size} vs ${y.size} tensors`);
    for (const [name, tx] of x) {
      const ty = y.get(name);
      compared++;
      if (!ty) {
        different.push(`${net}.${name} missing`);
        continue;
      }
      const bx = Buffer.from(tx.data.buffer, tx.data.byteOffset, tx.data.byteLength);
      const by = Buffer.from(ty.data.buffer, ty.data.byteOffset, ty.data.byteLength);
      bytes += bx.length;
      if (!bx.equals(by)) {
        const fx = tx.data as Float32Array;
        const fy = ty.data as Float32Array;
        let max = 0;
        for (let i = 0; i < fx.length; i++) max = Math.max(max, Math.abs(fx[i] - fy[i]));
        different.push(`${net}.${name} (max |Δ| ${max})`);
      }
    }
  }
  return { compared, bytes, different };
}

const stepLog = (ticks: { imagesShown: number; phase: string; alpha: number; resolution: number }[]) =>
  ticks.map((p) => `${p.imagesShown}:${p.resolution}${p.phase === 'fade' ? `f${p.alpha.toFixed(3)}` : 's'}`).join(' ');

let data = '';
test.before(async () => {
  data = await makeDataset();
});

test('N steps + save + resume + N steps equals 2N straight steps bit for bit, across both ends of a fade', async (t) => {
  const started = Date.now();
  // Straight: 0 → 128 images (16 steps: 9 stable at 4×4, 7 fading in 8×8), then → 192 (end of fade, stable 8×8).
  const straight = await Trainer.create(options(data));
  const ticksA: { imagesShown: number; phase: string; alpha: number; resolution: number }[] = [];
  await straight.train({ totalImages: 128, tickImages: 8, onProgress: (p) => p.tickSteps > 0 && ticksA.push(p) });
  const a128 = snapshot(straight);
  await straight.train({ totalImages: 192, tickImages: 8, onProgress: (p) => p.tickSteps > 0 && ticksA.push(p) });
  const a192 = snapshot(straight);
  t.log(`straight run, one tick per step: ${stepLog(ticksA)}`);
  t.true(ticksA.some((p) => p.phase === 'fade') && ticksA.some((p) => p.phase === 'stable' && p.resolution === 8), 'the run crosses a whole fade');

  // Resumed: 0 → 64 in one process, save, resume → 104 (mid-fade), save, → 128.
  const first = await Trainer.create(options(data));
  await first.train({ totalImages: 64, tickImages: 8 });
  const ck1 = path.join(dir, 'at-64.safetensors');
  first.save(ck1);
  const second = await Trainer.resume(ck1);
  t.is(second.state.imagesShown, 64);
  await second.train({ totalImages: 104, tickImages: 8 });
  t.is(second.state.phase, 'fade', '104 images is mid-fade');
  const ck2 = path.join(dir, 'at-104.safetensors');
  second.save(ck2);
  await second.train({ totalImages: 128, tickImages: 8 });
  const b128 = snapshot(second);

  const d128 = diffParams(a128, b128);
  t.log(`after 128 images (resumed at 64 = last stable step before the fade): ${d128.compared} tensors, ${d128.bytes} bytes, ${d128.different.length} differ`);
  t.log(`  straight: ${JSON.stringify(a128.state)}`);
  t.log(`  resumed:  ${JSON.stringify(b128.state)}`);
  t.deepEqual(d128.different, []);
  t.deepEqual(b128.state, a128.state, 'images shown, steps, position and last-tick losses agree');

  // Resume from the mid-fade checkpoint and run through the end of the fade.
  const third = await Trainer.resume(ck2);
  t.like(third.state, { imagesShown: 104, phase: 'fade', resolution: 8 });
  await third.train({ totalImages: 192, tickImages: 8 });
  const c192 = snapshot(third);
  const d192 = diffParams(a192, c192);
  t.log(`after 192 images (resumed mid-fade at 104, through the fade's end): ${d192.compared} tensors, ${d192.different.length} differ`);
  t.log(`  straight: ${JSON.stringify(a192.state)}`);
  t.log(`  resumed:  ${JSON.stringify(c192.state)}`);
  t.deepEqual(d192.different, []);
  t.deepEqual(c192.state, a192.state);

  // The check can fail: a run with another seed differs.
  const other = await Trainer.create({ ...options(data), seed: 2 });
  await other.train({ totalImages: 128, tickImages: 8 });
  const dOther = diffParams(a128, snapshot(other));
  t.log(`control (seed 2 vs seed 1 after 128 images): ${dOther.different.length}/${dOther.compared} tensors differ`);
  t.true(dOther.different.length > 0);
  t.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('exact resume also holds for trainPhase() stopped mid-fade', async (t) => {
  // trainPhase keeps its own position (phase.done), which the checkpoint must carry. The abort
  // comes from the 5th progress event, on the main thread, while the worker keeps stepping: the
  // phase is long (60 steps) so that it cannot end before the abort lands.
  const FADE = 480;
  const straight = await Trainer.create(options(data));
  await straight.trainPhase({ resolution: 8, phase: 'fade', images: FADE });
  const a = snapshot(straight);
  const first = await Trainer.create(options(data));
  const controller = new AbortController();
  let seen = 0;
  await first.trainPhase({ resolution: 8, phase: 'fade', images: FADE, tickImages: 8, signal: controller.signal, onProgress: (p) => ++seen === 5 && controller.abort() });
  const stoppedAt = first.state.imagesShown;
  const ck = path.join(dir, 'phase.safetensors');
  first.save(ck);
  const resumed = await Trainer.resume(ck);
  t.like(resumed.state, { imagesShown: stoppedAt, phase: 'fade', resolution: 8 });
  await resumed.trainPhase({ resolution: 8, phase: 'fade', images: FADE });
  const b = snapshot(resumed);
  const d = diffParams(a, b);
  t.log(`stopped at ${stoppedAt} of ${FADE} fade images, resumed: ${d.different.length}/${d.compared} tensors differ; states ${JSON.stringify(a.state)} vs ${JSON.stringify(b.state)}`);
  t.true(stoppedAt > 0 && stoppedAt < FADE);
  t.deepEqual(d.different, []);
  t.is(b.state.imagesShown, a.state.imagesShown);
});

test('a checkpoint written before cudaGraphs, deterministic, channelsLast, precision and weightGradient existed resumes with their defaults', async (t) => {
  const first = await Trainer.create(options(data));
  await first.train({ totalImages: 16, tickImages: 8 });
  const ck = path.join(dir, 'current.safetensors');
  first.save(ck);
  // The same checkpoint as an older progan wrote it: its options lack the five (the checksum covers
  // tensors only, so rewriting the metadata keeps it valid).
  const c = readCheckpoint(ck);
  const { cudaGraphs: _g, deterministic: _d, ...training } = c.options;
  const { channelsLast: _c, precision: _p, weightGradient: _w, ...network } = c.options.network;
  const old = path.join(dir, 'older.safetensors');
  writeCheckpoint(old, { ...c, options: { ...training, network } as typeof c.options });
  const resumed = await Trainer.resume(old);
  t.like(resumed.options, { cudaGraphs: true, deterministic: false, network: { channelsLast: 'auto', precision: 'float32', weightGradient: 'auto' } });
  await resumed.train({ totalImages: 32, tickImages: 8 });
  const same = await Trainer.resume(ck);
  await same.train({ totalImages: 32, tickImages: 8 });
  const d = diffParams(snapshot(same), snapshot(resumed));
  t.log(`resumed from the older-format checkpoint and from the current one, 2 steps each: ${d.different.length}/${d.compared} tensors differ`);
  t.deepEqual(d.different, []);
});

function pythonSafetensors(): string {
  const probe = () => spawnSync('python3', ['-c', 'import safetensors.numpy, safetensors; print(safetensors.__version__)'], {
    env: { ...process.env, PYTHONPATH: PYDEPS, PYTHONNOUSERSITE: '1' },
    encoding: 'utf8',
  });
  let r = probe();
  if (r.status !== 0) {
    // Offline, from the local package index only.
    const pip = spawnSync(
      'python3',
      ['-m', 'pip', 'install', '--no-deps', '--no-input', '--disable-pip-version-check', '--target', PYDEPS, '--index-url', 'file:///opt/pypi/simple', 'safetensors'],
      { encoding: 'utf8' },
    );
    if (pip.status !== 0) throw new Error(`Could not install Python safetensors offline into ${PYDEPS}:\n${pip.stdout}\n${pip.stderr}`);
    r = probe();
  }
  if (r.status !== 0) throw new Error(`Python safetensors does not import from ${PYDEPS}:\n${r.stderr}`);
  return r.stdout.trim();
}

test("the checkpoint loads in Python's safetensors with the expected names, shapes and metadata", async (t) => {
  const version = pythonSafetensors();
  const trainer = await Trainer.create(options(data));
  await trainer.train({ totalImages: 80 });
  const ck = path.join(dir, 'python.safetensors');
  trainer.save(ck);
  const r = spawnSync('python3', [path.join(__dirname, 'reference', 'checkpoint_load.py'), ck], {
    env: { ...process.env, PYTHONPATH: PYDEPS, PYTHONNOUSERSITE: '1' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  t.is(r.status, 0, r.stderr);
  const py = JSON.parse(r.stdout) as { tensors: Record<string, { shape: number[]; dtype: string }>; metadata: string[]; sameViaSafeOpen: boolean; checksumOfData: string };
  const ours = readSafetensors(ck).tensors;
  const names = Object.keys(py.tensors);
  t.log(`safetensors ${version}: ${names.length} tensors, metadata keys ${py.metadata.join(', ')}`);

  // Every network parameter under its prefix, both Adam moments for every parameter, RNG and sampler state.
  const expectNames: string[] = [];
  for (const [prefix, net] of [['G.', 'generator'], ['D.', 'discriminator'], ['G_ema.', 'generatorEma']] as const) {
    for (const [k, v] of trainer.parameters(net)) {
      expectNames.push(prefix + k);
      t.deepEqual(py.tensors[prefix + k]?.shape, v.shape, `${prefix}${k} shape`);
    }
  }
  for (const [prefix, net] of [['adam_G.', 'generator'], ['adam_D.', 'discriminator']] as const) {
    for (const [k, v] of trainer.parameters(net)) {
      for (const m of ['m.', 'v.']) {
        expectNames.push(prefix + m + k);
        t.deepEqual(py.tensors[prefix + m + k]?.shape, v.shape, `${prefix}${m}${k} shape`);
      }
    }
  }
  expectNames.push('rng.train', 'rng.sampler', 'sampler.permutation');
  t.deepEqual([...names].sort(), [...expectNames].sort());
  t.deepEqual(py.tensors['sampler.permutation'].shape, [16]);
  for (const [name, tensor] of ours) t.deepEqual(py.tensors[name].shape, tensor.shape, `${name}: python shape equals ours`);
  t.true(py.sameViaSafeOpen, 'safe_open reads the same arrays as load_file');
  for (const k of ['format', 'formatVersion', 'options', 'scalars', 'versions', 'checksum', 'created']) t.true(py.metadata.includes(k), `metadata has ${k}`);
  t.log(`examples: ${names.slice(0, 3).map((n) => `${n} ${JSON.stringify(py.tensors[n].shape)} ${py.tensors[n].dtype}`).join('; ')}; rng.train ${py.tensors['rng.train'].dtype}${JSON.stringify(py.tensors['rng.train'].shape)}`);
});
