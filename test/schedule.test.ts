// schedule.at() (the one C++ implementation, native/train/schedule.cpp) against an independent
// transcription of the official TrainingSchedule (test/reference/schedule.py) at random points and
// at both phase boundaries of every resolution (±1 image), for several configurations.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveTrainingOptions, type ScheduleConfig, type TrainingOptionsInput } from '../lib/train/options';
import { createSchedule, type SchedulePoint } from '../lib/train/schedule';

const REFERENCE = path.join(__dirname, 'reference', 'schedule.py');

/** Deterministic PRNG (mulberry32), so a failing point can be reproduced. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  id: string;
  input: Omit<TrainingOptionsInput, 'data'>;
}

const CASES: Case[] = [
  // Paper defaults: 4 → 1024, 600 + 600 kimg, the paper's minibatch table, lr 0.0015 at 1024.
  { id: 'paper-1024', input: { network: { preset: 'paper', resolution: 1024 } } },
  // A small schedule starting at 8×8 with per-resolution tables and fractional kimg.
  {
    id: 'small-start8',
    input: {
      network: { preset: 'small', resolution: 64 },
      schedule: { startResolution: 8, stableKimg: 0.064, fadeKimg: 0.064, minibatch: { 8: 16, 16: 8, 32: 8 }, learningRate: { 64: 0.003, 16: 0.0025 } },
    },
  },
  // No fade at all: the resolution jumps at each phase boundary.
  { id: 'fade0', input: { network: { preset: 'cifar', resolution: 32 }, schedule: { stableKimg: 1.5, fadeKimg: 0 } } },
  // Non-dyadic phase lengths (0.3 + 0.7 kimg) stress the floating-point boundaries.
  { id: 'odd-0.3-0.7', input: { network: { preset: 'small', resolution: 128 }, schedule: { stableKimg: 0.3, fadeKimg: 0.7, minibatch: 8 } } },
  // No stable phase: every phase is a fade.
  { id: 'stable0', input: { network: { preset: 'small', resolution: 32 }, schedule: { stableKimg: 0, fadeKimg: 0.1 } } },
];

function imagesFor(s: ScheduleConfig, seed: number): { images: number[]; boundaries: number } {
  const levels = Math.log2(s.finalResolution) - Math.log2(s.startResolution);
  const phase = s.stableKimg + s.fadeKimg;
  const set = new Set<number>();
  for (let p = 0; p <= levels; p++) {
    for (const kimg of [p * phase, p * phase + s.stableKimg, (p + 1) * phase]) {
      const exact = kimg * 1000;
      for (const base of [Math.floor(exact), Math.round(exact), Math.ceil(exact)]) {
        for (const d of [-1, 0, 1]) if (base + d >= 0) set.add(base + d);
      }
    }
  }
  const boundaries = set.size;
  const end = Math.ceil((levels + 1.5) * phase * 1000);
  const r = rng(seed);
  for (let i = 0; i < 500; i++) set.add(Math.floor(r() * end));
  set.add(0);
  set.add(end * 10);
  return { images: [...set].sort((a, b) => a - b), boundaries };
}

function runReference(configs: (ScheduleConfig & { id: string; images: number[] })[]): Record<string, SchedulePoint[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-schedule-'));
  try {
    const job = path.join(dir, 'job.json');
    const out = path.join(dir, 'out.json');
    fs.writeFileSync(job, JSON.stringify({ configs }));
    const r = spawnSync('python3', [REFERENCE, job, out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`schedule.py exited with ${r.status ?? r.signal}: ${r.error?.message ?? ''}\n${r.stderr}`);
    return JSON.parse(fs.readFileSync(out, 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function compare(ours: SchedulePoint, ref: SchedulePoint): string[] {
  const bad: string[] = [];
  if (ours.resolution !== ref.resolution) bad.push(`resolution ${ours.resolution} ≠ ${ref.resolution}`);
  if (!(Math.abs(ours.lod - ref.lod) < 1e-9)) bad.push(`lod ${ours.lod} ≠ ${ref.lod}`);
  if (ours.alpha !== ref.alpha) bad.push(`alpha ${ours.alpha} ≠ ${ref.alpha}`);
  if (ours.phase !== ref.phase) bad.push(`phase ${ours.phase} ≠ ${ref.phase}`);
  if (ours.minibatch !== ref.minibatch) bad.push(`minibatch ${ours.minibatch} ≠ ${ref.minibatch}`);
  if (ours.learningRate !== ref.learningRate) bad.push(`learningRate ${ours.learningRate} ≠ ${ref.learningRate}`);
  return bad;
}

test('schedule.at() matches the official TrainingSchedule at random points and at every phase boundary', (t) => {
  const configs = CASES.map((c, i) => {
    const schedule = resolveTrainingOptions({ data: 'unused.pgds', ...c.input }).schedule;
    return { id: c.id, ...schedule, ...imagesFor(schedule, 1000 + i) };
  });
  const started = Date.now();
  const reference = runReference(configs);
  let total = 0;
  const failures: string[] = [];
  for (const c of configs) {
    const schedule = createSchedule(c);
    const ref = reference[c.id];
    t.is(ref.length, c.images.length, `${c.id}: reference answered every point`);
    let fades = 0;
    let bitEqualLod = 0;
    const resolutions = new Set<number>();
    c.images.forEach((images, i) => {
      const ours = schedule.at(images);
      const bad = compare(ours, ref[i]);
      if (bad.length) failures.push(`${c.id} @ ${images} images: ${bad.join(', ')}`);
      if (ours.phase === 'fade') fades++;
      if (ours.lod === ref[i].lod) bitEqualLod++;
      resolutions.add(ours.resolution);
      total++;
    });
    t.log(
      `${c.id}: ${c.images.length} points (${c.boundaries} at/around boundaries), ${fades} fading, ` +
        `resolutions ${[...resolutions].sort((a, b) => a - b).join(',')}, lod bit-equal at ${bitEqualLod}/${c.images.length}`,
    );
  }
  t.log(`${total} points compared in ${Date.now() - started} ms; ${failures.length} mismatches`);
  for (const f of failures.slice(0, 20)) t.log(f);
  t.deepEqual(failures, []);
});

test('the boundaries fall where the paper puts them (paper defaults)', (t) => {
  const s = createSchedule(resolveTrainingOptions({ data: 'unused.pgds', network: { preset: 'paper', resolution: 1024 } }).schedule);
  // 4×4 stabilises for 600 kimg, then 8×8 fades in over the next 600 kimg.
  t.like(s.at(0), { resolution: 4, lod: 8, alpha: 1, phase: 'stable', minibatch: 128, learningRate: 0.001 });
  t.like(s.at(600_000), { resolution: 4, lod: 8, alpha: 1, phase: 'stable' });
  t.like(s.at(600_001), { resolution: 8, phase: 'fade' });
  t.like(s.at(900_000), { resolution: 8, lod: 7.5, alpha: 0.5, phase: 'fade' });
  t.like(s.at(1_200_000), { resolution: 8, lod: 7, alpha: 1, phase: 'stable' });
  t.like(s.at(8_400_000), { resolution: 512, lod: 1, minibatch: 4, learningRate: 0.001 });
  t.like(s.at(9_300_000), { resolution: 1024, lod: 0.5, phase: 'fade', minibatch: 4, learningRate: 0.0015 });
  t.like(s.at(9_600_000), { resolution: 1024, lod: 0, alpha: 1, phase: 'stable' });
  t.like(s.at(50_000_000), { resolution: 1024, lod: 0, alpha: 1, phase: 'stable' });
  t.throws(() => s.at(-1), { message: /non-negative/ });
  t.throws(() => s.at(NaN), { message: /non-negative/ });
});

test('the comparison can fail: a schedule with a 1 % longer fade disagrees with the reference', (t) => {
  const schedule = resolveTrainingOptions({ data: 'unused.pgds', network: { preset: 'small', resolution: 32 } }).schedule;
  const { images } = imagesFor(schedule, 7);
  const reference = runReference([{ id: 'x', ...schedule, images }]).x;
  const wrong = createSchedule({ ...schedule, fadeKimg: schedule.fadeKimg * 1.01 });
  const mismatches = images.filter((n, i) => compare(wrong.at(n), reference[i]).length > 0).length;
  t.log(`mutated schedule: ${mismatches}/${images.length} points differ from the reference`);
  t.true(mismatches > 50);
});
