// The training host allocator (native/train/host_allocator.cpp): once a trainer exists, freed tensor
// buffers of 64 KB and more are kept and handed out again for the same size, so repeating the same
// steps does not grow the idle cache, and idle memory stays under its cap (blocks of other sizes go
// first). Every other training test runs on it too: their parity bounds cover its correctness.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../lib/native';
import { Trainer } from '../lib/train/trainer';
import { noiseDataset } from './helpers/datasets';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-host-cache-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const MB = 1 << 20;

test.serial('freed buffers are reused by size, and idle memory stays under the cap', async (t) => {
  t.false(native().hostCache().installed, 'nothing is installed before the first trainer');
  const data = await noiseDataset(dir, { count: 16, resolution: 16, seed: 3 });
  const trainer = await Trainer.create({
    data,
    network: { preset: 'small', resolution: 16, fmapMax: 64, latentSize: 64 },
    schedule: { minibatch: 8 },
    seed: 1,
  });
  const { installed, capBytes } = native().hostCache();
  t.true(installed);
  await trainer.trainPhase({ resolution: 16, phase: 'stable', images: 2 * 8 }); // first steps allocate
  const afterTwo = native().hostCache().idleBytes;
  await trainer.trainPhase({ resolution: 16, phase: 'stable', images: 6 * 8 });
  const afterEight = native().hostCache().idleBytes;
  t.log(`idle after 2 steps ${(afterTwo / MB).toFixed(2)} MB, after 8 steps ${(afterEight / MB).toFixed(2)} MB (cap ${(capBytes / MB).toFixed(0)} MB)`);
  t.true(afterTwo > MB, 'freed step buffers are kept');
  // Without reuse every step would add its buffers to the idle cache again.
  t.true(afterEight <= afterTwo * 1.05 + MB, 'six more identical steps reuse the kept buffers');

  const cap = 2 * MB;
  t.true(native().hostCache(cap).idleBytes <= cap, 'lowering the cap releases idle blocks at once');
  await trainer.trainPhase({ resolution: 8, phase: 'fade', images: 2 * 8 });
  await trainer.trainPhase({ resolution: 16, phase: 'stable', images: 2 * 8 });
  const capped = native().hostCache().idleBytes;
  t.log(`idle under a ${cap / MB} MB cap after steps at 8² and 16²: ${(capped / MB).toFixed(2)} MB`);
  t.true(capped <= cap);
  native().hostCache(capBytes);
  t.throws(() => native().hostCache(-1), { message: /Expected a cap of 0 or more bytes/ });
});
