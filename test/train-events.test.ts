// Training runs on a worker thread: a timer keeps ticking during trainPhase(), every progress event
// arrives in order and none is lost, an abort stops within one step and leaves a saveable trainer,
// and synchronous calls refuse with a clear "busy" error instead of blocking while a loop runs.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { prepareDataset } from '../lib/dataset';
import { randn } from '../lib/tensor';
import { Trainer, type Progress } from '../lib/train/trainer';
import type { TrainingOptionsInput } from '../lib/train/options';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'progan-events-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

let data = '';
test.before(async () => {
  const images = path.join(dir, 'images');
  fs.mkdirSync(images);
  for (let i = 0; i < 16; i++) {
    const px = Buffer.alloc(16 * 16 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (j * 37 + i * 101 + ((j * i) % 13)) & 255;
    await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(images, `${i}.png`));
  }
  data = path.join(dir, 'data.pgds');
  await prepareDataset({ input: images, output: data, resolution: 16 });
});

const options = (): TrainingOptionsInput => ({
  data,
  network: { preset: 'small', resolution: 16, fmapMax: 32, latentSize: 32 },
  schedule: { stableKimg: 0.064, fadeKimg: 0.064, minibatch: 8 },
  seed: 1,
});

test.serial('a timer keeps ticking during trainPhase() and no progress event is lost', async (t) => {
  const trainer = await Trainer.create(options());
  const events: (Progress & { at: number; timerTicksSoFar: number })[] = [];
  let timerTicks = 0;
  const timer = setInterval(() => timerTicks++, 5);
  const started = performance.now();
  let final: Progress;
  try {
    final = await trainer.trainPhase({
      resolution: 8, // cheap steps: the test is about events, not speed
      phase: 'fade',
      images: 40 * 8,
      tickImages: 8, // one event per step
      onProgress: (p) => events.push({ ...p, at: performance.now() - started, timerTicksSoFar: timerTicks }),
    });
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - started;
  const steps = events.filter((e) => e.tickSteps > 0);
  t.log(`40 steps at 8×8 in ${ms.toFixed(0)} ms; the 5 ms timer fired ${timerTicks} times (${(ms / 5).toFixed(0)} possible)`);
  t.log(`${events.length} events: ${steps.length} with a step, ${events.length - steps.length} closing (tickSteps 0); final ${JSON.stringify({ imagesShown: final.imagesShown, steps: final.steps, tickSteps: final.tickSteps, finished: final.finished, stopped: final.stopped })}`);
  // Responsiveness: the timer fired at least a third as often as it could have, and between events.
  t.true(timerTicks >= ms / 5 / 3, `timer fired ${timerTicks} times in ${ms.toFixed(0)} ms`);
  const during = steps.slice(1).filter((e, i) => e.timerTicksSoFar > steps[i].timerTicksSoFar).length;
  t.log(`the timer fired between ${during} of ${steps.length - 1} consecutive step events`);
  t.true(during >= (steps.length - 1) / 2);

  // One event per step, in order, no gap; then exactly one closing event (training_loop.cpp emits the
  // finished report even when its tick is empty).
  t.is(steps.length, 40);
  steps.forEach((e, i) => {
    t.is(e.steps, i + 1, `event ${i} has steps ${e.steps}`);
    t.is(e.imagesShown, (i + 1) * 8, `event ${i} has imagesShown ${e.imagesShown}`);
    t.is(e.tickSteps, 1);
    t.false(e.finished);
  });
  for (let i = 1; i < events.length; i++) t.true(events[i].at >= events[i - 1].at);
  const closing = events.slice(steps.length);
  t.is(closing.length, 1, 'one closing event after the last step');
  t.like(closing[0], { tickSteps: 0, finished: true, stopped: false, steps: 40, imagesShown: 320 });
  t.like(final, { finished: true, stopped: false, steps: 40, imagesShown: 320 });
  // α rises through the fade: the first step runs at α 0 and the last at 39/40.
  t.is(steps[0].alpha, 0);
  t.is(steps[39].alpha, 39 / 40);
  t.is(trainer.state.steps, 40);
});

test.serial('an abort stops within one step, resolves stopped: true, and the trainer saves and resumes', async (t) => {
  const trainer = await Trainer.create(options());
  const controller = new AbortController();
  let stepsAtAbort = -1;
  let eventsAfterAbort = 0;
  const events: Progress[] = [];
  const started = performance.now();
  const result = await trainer.trainPhase({
    resolution: 16,
    phase: 'stable',
    images: 100_000, // far longer than the test
    tickImages: 8,
    signal: controller.signal,
    onProgress: (p) => {
      events.push(p);
      if (stepsAtAbort >= 0) eventsAfterAbort++;
      if (events.length === 3) {
        controller.abort();
        // The native counter at the moment of abort: the worker may be mid-step.
        stepsAtAbort = trainer.state.steps;
      }
    },
  });
  const ms = performance.now() - started;
  t.log(`aborted after the 3rd event at steps=${stepsAtAbort}; promise resolved after ${ms.toFixed(0)} ms with steps=${result.steps}, stopped=${result.stopped}, finished=${result.finished}; ${eventsAfterAbort} events after abort`);
  t.true(result.stopped);
  t.true(result.finished);
  t.true(stepsAtAbort >= 3, 'the counter had reached the 3rd step');
  t.true(result.steps - stepsAtAbort <= 1, `at most one step after abort() (${stepsAtAbort} → ${result.steps})`);
  t.is(trainer.state.steps, result.steps);
  // Every step is still reported, in order.
  const stepEvents = events.filter((e) => e.tickSteps > 0);
  t.deepEqual(stepEvents.map((e) => e.steps), Array.from({ length: result.steps }, (_, i) => i + 1));
  t.like(events[events.length - 1], { stopped: true, finished: true });

  // Saveable, resumable, and a later run is not stopped by the stale abort.
  const ck = path.join(dir, 'aborted.safetensors');
  trainer.save(ck);
  const resumed = await Trainer.resume(ck);
  t.is(resumed.state.imagesShown, result.imagesShown);
  const more = await resumed.trainPhase({ resolution: 16, phase: 'stable', images: 16, tickImages: 8 });
  t.log(`resumed and ran a 2-step phase: ${JSON.stringify({ imagesShown: more.imagesShown, steps: more.steps, stopped: more.stopped })}`);
  t.false(more.stopped);
  t.is(more.steps, result.steps + 2);
  const again = await trainer.trainPhase({ resolution: 16, phase: 'stable', images: 16, tickImages: 8 });
  t.false(again.stopped, 'the original trainer trains again after an abort');
  // It resolves with the phase's last tick (8 images per tick: one step), marked as the end.
  t.true(again.finished);
  t.is(again.tickSteps, 1);
  t.is(again.steps, result.steps + 2);
});

test.serial('sample(), save() and parameters() during training throw a clear busy error instead of blocking', async (t) => {
  const trainer = await Trainer.create(options());
  const latents = randn([2, 32], { seed: 3 });
  const controller = new AbortController();
  const errors: string[] = [];
  let blockedMs = 0;
  let probed = false;
  const running = trainer.trainPhase({
    resolution: 16,
    phase: 'stable',
    images: 100_000,
    tickImages: 8,
    signal: controller.signal,
    onProgress: (p) => {
      // Once: when the abort lands before step 3 starts, the closing report also says step 2.
      if (p.steps !== 2 || probed) return;
      probed = true;
      for (const call of [() => trainer.sample(latents), () => trainer.save(path.join(dir, 'busy.safetensors')), () => trainer.parameters('generator')]) {
        const t0 = performance.now();
        try {
          call();
          errors.push('no error');
        } catch (e) {
          errors.push((e as Error).message);
        }
        blockedMs = Math.max(blockedMs, performance.now() - t0);
      }
      controller.abort();
    },
  });
  // Also synchronously, right after starting, before the worker ran a step.
  t.throws(() => trainer.sample(latents), { message: /busy/ });
  await t.throwsAsync(trainer.trainPhase({ resolution: 16, phase: 'stable', images: 8 }), { message: /busy/ }, 'a second loop is refused too');
  const r = await running;
  t.log(`errors during training: ${JSON.stringify(errors)}; slowest refusal ${blockedMs.toFixed(2)} ms; stopped at step ${r.steps}`);
  t.is(errors.length, 3);
  for (const e of errors) t.regex(e, /busy training/);
  t.true(blockedMs < 50, 'refusing does not wait for the step to finish');
  t.false(fs.existsSync(path.join(dir, 'busy.safetensors')));
  // And once the loop is over, sampling works.
  t.deepEqual(trainer.sample(latents).shape, [2, 3, 16, 16]);
});

test.serial('an already-aborted signal returns at once without training', async (t) => {
  const trainer = await Trainer.create(options());
  const r = await trainer.trainPhase({ resolution: 16, phase: 'stable', images: 80, signal: AbortSignal.abort() });
  t.log(`pre-aborted: ${JSON.stringify({ stopped: r.stopped, steps: r.steps })}`);
  t.true(r.stopped);
  t.is(trainer.state.steps, 0);
});

test.serial('profile: a run writes a Chrome trace that holds exactly its own steps', async (t) => {
  const trainer = await Trainer.create(options());
  await trainer.trainPhase({ resolution: 8, phase: 'stable', images: 8 }); // unprofiled warm-up step
  const ops = async (steps: number) => {
    const file = path.join(dir, `trace-${steps}.json`);
    const r = await trainer.trainPhase({ resolution: 8, phase: 'stable', images: steps * 8, profile: file });
    t.true(r.finished);
    const events = (JSON.parse(fs.readFileSync(file, 'utf8')) as { traceEvents: { name: string; cat?: string; ph: string }[] }).traceEvents;
    const count = (name: string) => events.filter((e) => e.ph === 'X' && e.cat === 'cpu_op' && e.name === name).length;
    return { convolutions: count('aten::convolution'), adam: count('aten::_fused_adam_'), total: events.length };
  };
  const one = await ops(1);
  const three = await ops(3);
  t.log(`1 step: ${JSON.stringify(one)}; 3 steps: ${JSON.stringify(three)}`);
  t.true(one.convolutions > 0, 'convolutions are recorded');
  t.is(one.adam, 2, 'one D and one G update per step');
  t.is(three.convolutions, 3 * one.convolutions, 'three steps hold three times the convolutions of one');
  t.is(three.adam, 6);
  // The trainer goes on training, unprofiled, afterwards.
  const after = await trainer.trainPhase({ resolution: 8, phase: 'stable', images: 8 });
  t.is(after.steps, 6); // warm-up 1 + profiled 1 + 3 + this 1
  // train() (the growth schedule) takes the same option.
  const file = path.join(dir, 'trace-train.json');
  await trainer.train({ totalImages: after.imagesShown + 2 * 8, profile: file });
  const events = (JSON.parse(fs.readFileSync(file, 'utf8')) as { traceEvents: { name: string; ph: string }[] }).traceEvents;
  t.is(events.filter((e) => e.ph === 'X' && e.name === 'aten::_fused_adam_').length, 4, 'two steps of train() in its trace');
});

test.serial('profile: a path in a missing folder is refused before training', async (t) => {
  const trainer = await Trainer.create(options());
  const missing = path.join(dir, 'no-such-folder', 'trace.json');
  await t.throwsAsync(trainer.trainPhase({ resolution: 8, phase: 'stable', images: 8, profile: missing }), {
    message: /Cannot write the profile to .*no-such-folder.*does not exist/,
  });
  await t.throwsAsync(trainer.train({ totalImages: 8, profile: '' }), { message: /Expected a file path for profile/ });
  t.is(trainer.state.steps, 0);
});
