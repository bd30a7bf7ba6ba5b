// CLI: `progan train`, `progan resume`, `progan generate` and `progan demo`.
import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { integerFlag, numberFlag, presetFlag } from '../cli';
import { openDataset, prepareDataset } from '../dataset';
import { imageGrid } from '../images';
import { createNetworks } from '../networks';
import { randn, Tensor } from '../tensor';
import { readCheckpoint } from './checkpoint';
import type { TrainingOptionsInput } from './options';
import { formatDuration, formatTick, ProgressLine } from './progress';
import { defaultRunSettings, TrainingRun, type RunSettings, type RunSummary } from './run';
import { Trainer } from './trainer';

/** Runs with a progress line; the first Ctrl-C stops within one step and saves, a second exits. */
async function runWithProgress(run: TrainingRun): Promise<RunSummary> {
  const bar = new ProgressLine();
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    bar.message('stopping after this step and saving a checkpoint (Ctrl-C again to quit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const summary = await run.run({
      signal: controller.signal,
      onTick: (p, eta) => bar.update(formatTick(p, run.settings.totalImages, eta)),
      onMessage: (m) => bar.message(m),
    });
    bar.end();
    printSummary(run, summary);
    if (summary.stopped) process.exitCode = 130;
    return summary;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function printSummary(run: TrainingRun, s: RunSummary): void {
  const rel = (f: string | null) => (f ? path.relative(process.cwd(), f) : 'none');
  console.log(`${s.stopped ? 'stopped' : 'finished'} at ${(s.imagesShown / 1000).toFixed(1)} kimg in ${rel(run.dir)}`);
  console.log(`  checkpoint ${rel(s.lastCheckpoint)}`);
  if (s.finalGrid) console.log(`  samples    ${rel(s.finalGrid)} (EMA generator left, raw right)`);
  if (s.timelapse) console.log(`  time-lapse ${rel(s.timelapse)}`);
  const speeds = Object.entries(s.imagesPerSecond).map(([r, v]) => `${r}²: ${v.toFixed(1)}`);
  if (speeds.length) console.log(`  img/s      ${speeds.join(', ')}`);
}

function runSettingsFrom(trainer: Trainer, o: Record<string, number | undefined>): RunSettings {
  const d = defaultRunSettings(trainer, o.totalKimg !== undefined ? Math.round(o.totalKimg * 1000) : undefined);
  return {
    ...d,
    tickImages: o.tickKimg !== undefined ? Math.max(1, Math.round(o.tickKimg * 1000)) : d.tickImages,
    checkpointTicks: o.checkpointTicks ?? d.checkpointTicks,
    keepCheckpoints: o.keep ?? d.keepCheckpoints,
  };
}

function trainingOptionsFrom(o: Record<string, unknown>): TrainingOptionsInput {
  const schedule: NonNullable<TrainingOptionsInput['schedule']> = {};
  if (o.stableKimg !== undefined) schedule.stableKimg = o.stableKimg as number;
  if (o.fadeKimg !== undefined) schedule.fadeKimg = o.fadeKimg as number;
  if (o.totalKimg !== undefined) schedule.totalKimg = o.totalKimg as number;
  if (o.minibatch !== undefined) schedule.minibatch = o.minibatch as number;
  if (o.lr !== undefined) schedule.learningRate = o.lr as number;
  const network: NonNullable<TrainingOptionsInput['network']> = { preset: o.preset as 'paper' };
  if (o.resolution !== undefined) network.resolution = o.resolution as number;
  if (o.channels !== undefined) network.channels = o.channels as 1 | 3;
  if (o.labelSize !== undefined) network.labelSize = o.labelSize as number;
  if (o.latentSize !== undefined) network.latentSize = o.latentSize as number;
  if (o.fmapMax !== undefined) network.fmapMax = o.fmapMax as number;
  if (o.fmapBase !== undefined) network.fmapBase = o.fmapBase as number;
  if (o.precision !== undefined) network.precision = o.precision as 'float32' | 'bfloat16';  // zod names a bad value
  if (o.channelsLast === false) network.channelsLast = false;
  if (o.weightGradient !== undefined) network.weightGradient = o.weightGradient as 'auto';  // zod names a bad value
  const out: TrainingOptionsInput = { data: o.data as string, network, schedule };
  if (o.seed !== undefined) out.seed = o.seed as number;
  if (o.mirror) out.mirror = true;
  if (o.threads !== undefined) out.threads = o.threads as number;
  if (o.device !== undefined) out.device = o.device as 'auto';  // zod names a bad value
  if (o.cudaGraphs === false) out.cudaGraphs = false;
  if (o.deterministic) out.deterministic = true;
  if (o.gpScale !== undefined) out.loss = { gradientPenaltyScale: o.gpScale as 'official' | 'native' };
  if (o.emaHalfLifeKimg !== undefined) out.ema = { halfLifeKimg: o.emaHalfLifeKimg as number };
  return out;
}

function addTrainingFlags(c: Command): Command {
  return c
    .option('--preset <name>', 'paper | cifar | small (networks and schedule defaults)', presetFlag, 'small')
    .option('--resolution <n>', 'final resolution (default: the dataset\'s)', integerFlag('--resolution'))
    .option('--channels <n>', 'image channels (default: the dataset\'s)', integerFlag('--channels'))
    .option('--label-size <n>', 'classes for a conditional model (default 0)', integerFlag('--label-size'))
    .option('--latent-size <n>', 'latent vector length', integerFlag('--latent-size'))
    .option('--fmap-base <n>', 'feature-map base', integerFlag('--fmap-base'))
    .option('--fmap-max <n>', 'most feature maps per layer', integerFlag('--fmap-max'))
    .option('--total-kimg <n>', 'train until this many thousand images shown', numberFlag('--total-kimg'))
    .option('--stable-kimg <n>', 'thousand images per stable phase', numberFlag('--stable-kimg'))
    .option('--fade-kimg <n>', 'thousand images per fade-in phase', numberFlag('--fade-kimg'))
    .option('--minibatch <n>', 'minibatch at every resolution (default: the preset\'s table)', integerFlag('--minibatch'))
    .option('--lr <x>', 'learning rate at every resolution', numberFlag('--lr'))
    .option('--ema-half-life-kimg <x>', 'G EMA half-life in thousand images (0: β 0.999 per step)', numberFlag('--ema-half-life-kimg'))
    .option('--gp-scale <kind>', 'official | native gradient-penalty scale')
    .option('--mirror', 'random horizontal flips')
    .option('--seed <n>', 'random seed', integerFlag('--seed'))
    .option('--threads <n>', 'CPU threads for libtorch (default: all cores)', integerFlag('--threads'))
    .option('--device <d>', 'auto | cpu | cuda (auto: the GPU when this build has CUDA kernels and one is visible)')
    .option('--no-cuda-graphs', 'on a GPU, launch every step op by op instead of replaying a recorded CUDA graph')
    .option('--deterministic', 'on a GPU, deterministic cuDNN algorithms only (reproducible, sometimes slower)')
    .option('--no-channels-last', 'on a GPU, convolutions in NCHW layout instead of channels-last (NHWC)')
    .option('--precision <p>', 'float32 | bfloat16 (bfloat16 multiplies in convs and dense layers; the rest float32)')
    .option('--weight-gradient <how>', "auto | library | gemm: 3×3 convolutions' weight gradients by the library's kernel or as matrix products (same result)")
    .option('--tick-kimg <x>', 'thousand images per tick (log line, sample grid)', numberFlag('--tick-kimg'))
    .option('--checkpoint-ticks <n>', 'checkpoint every N ticks', integerFlag('--checkpoint-ticks'))
    .option('--keep <n>', 'periodic checkpoints to keep', integerFlag('--keep'));
}

async function startRun(o: Record<string, unknown>): Promise<RunSummary> {
  const data = o.data as string;
  if (!fs.existsSync(data)) {
    throw new Error(`The dataset ${data} does not exist. Make one with \`progan prepare <images> ${data} --resolution <R>\``);
  }
  const ds = openDataset(data);
  const header = ds.header;
  ds.close();
  const input = trainingOptionsFrom({ ...o, resolution: o.resolution ?? header.resolution, channels: o.channels ?? header.channels });
  const out = o.out as string;
  if (fs.existsSync(path.join(out, 'options.json'))) {
    throw new Error(`${out} already holds a run: continue it with \`progan resume ${out}\` or choose another --out`);
  }
  const trainer = await Trainer.create(input);
  const run = new TrainingRun(out, trainer, runSettingsFrom(trainer, o as Record<string, number | undefined>));
  console.log(
    `training ${trainer.options.network.preset} networks to ${trainer.options.network.resolution}² on ${header.count} images ` +
      `(${(run.settings.totalImages / 1000).toFixed(1)} kimg, phases ${trainer.options.schedule.stableKimg}+${trainer.options.schedule.fadeKimg} kimg) → ${out}`,
  );
  return runWithProgress(run);
}

export function registerTrainingCommands(program: Command): void {
  addTrainingFlags(
    program
      .command('train')
      .description('train a progressive GAN on a prepared dataset')
      .requiredOption('--data <file>', 'dataset made by `progan prepare`')
      .requiredOption('--out <dir>', 'run folder (options, logs, samples, checkpoints)'),
  ).action(async (o) => {
    await startRun(o);
  });

  program
    .command('resume <run>')
    .description('continue a run folder from its newest checkpoint')
    .option('--total-kimg <n>', 'new total length', numberFlag('--total-kimg'))
    .option('--data <file>', 'the dataset, if it moved')
    .action(async (dir: string, o) => {
      const run = await TrainingRun.resume(dir, {
        data: o.data,
        ...(o.totalKimg !== undefined ? { totalImages: Math.round(o.totalKimg * 1000) } : {}),
      });
      console.log(`resuming ${dir} at ${(run.trainer.state.imagesShown / 1000).toFixed(1)} kimg`);
      await runWithProgress(run);
    });

  program
    .command('generate <checkpoint>')
    .description('write a grid of generated images from a checkpoint')
    .requiredOption('--out <file>', 'PNG file to write')
    .option('--count <n>', 'images', integerFlag('--count'), 16)
    .option('--seed <n>', 'latent seed', integerFlag('--seed'), 0)
    .option('--columns <n>', 'grid columns', integerFlag('--columns'))
    .option('--raw', 'use the raw generator instead of the EMA one')
    .action(async (file: string, o) => {
      if (!(o.count >= 1 && o.count <= 4096)) throw new Error(`Expected 1 to 4096 for --count but received ${o.count}`);
      const c = readCheckpoint(file);
      const nets = createNetworks(c.options.network);
      const prefix = o.raw ? 'G.' : 'G_ema.';
      nets.generator.setParameters(new Map([...c.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t])));
      const final = c.options.network.resolution;
      const lod = Math.max(c.scalars.lastLod ?? 0, 0);
      const resolution = final / 2 ** Math.floor(lod);
      const alpha = 1 - (lod - Math.floor(lod));
      const latents = randn([o.count, c.options.network.latentSize], { seed: o.seed });
      const images = nets.generator.forward(latents, { resolution, alpha, ...labelsFor(c.options.network.labelSize, o.count) });
      fs.writeFileSync(o.out, await imageGrid(images, { columns: o.columns, size: final }));
      console.log(`wrote ${o.out}: ${o.count} images at ${resolution}² (α ${alpha.toFixed(2)}), shown at ${final}²`);
    });

  program
    .command('demo')
    .description('the quick start: prepare the embedded emoji dataset and train the small preset to 32² in about 10 minutes')
    .option('--out <dir>', 'run folder', 'runs/demo')
    .option('--data <file>', 'where to keep the prepared emoji dataset', 'runs/emoji-32.pgds')
    .option('--total-kimg <n>', 'length', numberFlag('--total-kimg'))
    .option('--seed <n>', 'random seed', integerFlag('--seed'), 1)
    .action(async (o) => {
      if (!fs.existsSync(o.data)) {
        console.log(`preparing the emoji dataset (emoji-datasource-google, 32×32) → ${o.data}`);
        const t0 = Date.now();
        const r = await prepareDataset({ input: 'emoji-datasource-google', output: o.data, resolution: 32 });
        console.log(`  ${r.count} images in ${formatDuration((Date.now() - t0) / 1000)}`);
      }
      if (fs.existsSync(path.join(o.out, 'options.json'))) fs.rmSync(o.out, { recursive: true, force: true });
      await startRun({ ...DEMO, data: o.data, out: o.out, seed: o.seed, ...(o.totalKimg ? { totalKimg: o.totalKimg } : {}) });
    });
}

/**
 * The demo's settings: 3 + 3 kimg phases, 4² → 32² with a full fade and 3 kimg of stable 32². Measured
 * from a fresh clone on 2 cores: 11.4 min in all, of which 4.7 min setup and build, 6.5 min training
 * (282, 151, 61 and 26 img/s at 4², 8², 16², 32²).
 */
const DEMO = { preset: 'small', resolution: 32, stableKimg: 3, fadeKimg: 3, totalKimg: 21, tickKimg: 0.5, checkpointTicks: 10 };

function labelsFor(labelSize: number, n: number) {
  if (labelSize === 0) return {};
  const data = new Float32Array(n * labelSize);
  for (let i = 0; i < n; i++) data[i * labelSize + (i % labelSize)] = 1;
  return { labels: new Tensor(data, [n, labelSize], 'float32') };
}
