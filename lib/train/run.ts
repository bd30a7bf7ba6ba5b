// A training run folder: options.json, log.jsonl, TensorBoard events, samples/ (fixed-latent grids
// per tick: EMA generator on the left, raw generator on the right), timelapse.webp, checkpoints/.
// Training advances one tick at a time; between ticks the run samples, logs and checkpoints.
import fs from 'node:fs';
import path from 'node:path';
import { imageGrid, writeTimelapse } from '../images';
import { randn, Tensor } from '../tensor';
import { TensorBoardWriter } from '../tensorboard';
import { Trainer, type Progress } from './trainer';

export interface RunSettings {
  /** Images per tick: one log line, one sample grid (default: the schedule's phase length / 10). */
  tickImages: number;
  /** Write a checkpoint every this many ticks (and always at the end of each resolution and run). */
  checkpointTicks: number;
  /** Keep the last K periodic checkpoints; end-of-resolution ones are always kept. */
  keepCheckpoints: number;
  /** Latents in the sample grid. */
  sampleCount: number;
  totalImages: number;
}

export interface RunHooks {
  onTick?: (p: Progress, etaSeconds: number) => void;
  onMessage?: (text: string) => void;
  signal?: AbortSignal;
}

export interface RunSummary {
  imagesShown: number;
  stopped: boolean;
  /** Measured images per second at each resolution, over all its ticks. */
  imagesPerSecond: Record<string, number>;
  lastCheckpoint: string;
  timelapse: string | null;
  finalGrid: string | null;
}

const SAMPLE_SEED = 123456789;

export function defaultRunSettings(trainer: Trainer, totalImages?: number): RunSettings {
  const s = trainer.options.schedule;
  const phaseImages = Math.max((s.stableKimg + s.fadeKimg) * 1000, 1000);
  return {
    tickImages: Math.max(Math.round(phaseImages / 10), 1),
    checkpointTicks: 10,
    keepCheckpoints: 3,
    sampleCount: 16,
    totalImages: totalImages ?? Math.round(s.totalKimg * 1000),
  };
}

export class TrainingRun {
  private readonly tb: TensorBoardWriter;
  private readonly latents: Tensor;
  private readonly speed = new Map<number, { images: number; seconds: number }>();

  constructor(
    readonly dir: string,
    readonly trainer: Trainer,
    readonly settings: RunSettings,
  ) {
    fs.mkdirSync(path.join(dir, 'samples'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
    const optionsFile = path.join(dir, 'options.json');
    if (!fs.existsSync(optionsFile)) {
      fs.writeFileSync(optionsFile, JSON.stringify({ training: trainer.options, run: settings }, null, 2) + '\n');
    }
    this.tb = new TensorBoardWriter(dir);
    this.latents = randn([settings.sampleCount, trainer.options.network.latentSize], { seed: SAMPLE_SEED });
  }

  /** Resumes the run folder from its newest checkpoint. */
  static async resume(dir: string, overrides: Partial<RunSettings> & { data?: string } = {}): Promise<TrainingRun> {
    const optionsFile = path.join(dir, 'options.json');
    if (!fs.existsSync(optionsFile)) throw new Error(`${dir} is not a progan run folder (no options.json)`);
    const checkpoint = newestCheckpoint(dir);
    if (!checkpoint) throw new Error(`${dir} holds no checkpoint to resume from (checkpoints/ is empty)`);
    const saved = JSON.parse(fs.readFileSync(optionsFile, 'utf8')) as { run: RunSettings };
    const { data, ...rest } = overrides;
    const trainer = await Trainer.resume(checkpoint, { data });
    return new TrainingRun(dir, trainer, { ...saved.run, ...rest });
  }

  async run(hooks: RunHooks = {}): Promise<RunSummary> {
    const { totalImages, tickImages } = this.settings;
    const say = hooks.onMessage ?? (() => undefined);
    let lastCheckpoint = '';
    let ticks = 0;
    let stopped = false;
    let resolution = this.trainer.state.resolution;
    if (this.trainer.state.imagesShown === 0) await this.writeSamples();
    while (this.trainer.state.imagesShown < totalImages) {
      const target = Math.min(totalImages, this.trainer.state.imagesShown + tickImages);
      // The tick's report arrives as a progress event; the resolved value closes the loop.
      const t = await this.trainer.train({
        totalImages: target,
        tickImages: target,
        signal: hooks.signal,
        onProgress: (p) => {
          if (p.tickSteps > 0) this.record(p, hooks);
        },
      });
      ticks++;
      if (t.stopped) {
        stopped = true;
        break;
      }
      await this.writeSamples();
      const now = this.trainer.state.resolution;
      if (now !== resolution) {
        // The last state at the old resolution is worth keeping for good.
        lastCheckpoint = this.checkpoint(`resolution-${resolution}`);
        say(`reached ${now}×${now}; kept ${path.relative(process.cwd(), lastCheckpoint)}`);
        resolution = now;
      } else if (ticks % this.settings.checkpointTicks === 0) {
        lastCheckpoint = this.checkpoint();
      }
    }
    lastCheckpoint = this.checkpoint(stopped ? undefined : 'final');
    if (stopped) say(`stopped at ${(this.trainer.state.imagesShown / 1000).toFixed(1)} kimg; saved ${lastCheckpoint}`);
    const timelapse = await this.writeTimelapse();
    const finalGrid = stopped ? null : await this.writeSamples(path.join(this.dir, 'final.png'));
    this.tb.close();
    const imagesPerSecond: Record<string, number> = {};
    for (const [r, s] of this.speed) imagesPerSecond[r] = s.seconds > 0 ? s.images / s.seconds : 0;
    const summary: RunSummary = { imagesShown: this.trainer.state.imagesShown, stopped, imagesPerSecond, lastCheckpoint, timelapse, finalGrid };
    fs.writeFileSync(path.join(this.dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    return summary;
  }

  private record(t: Progress, hooks: RunHooks): void {
    const s = this.speed.get(t.resolution) ?? { images: 0, seconds: 0 };
    s.images += t.imagesPerSecond * t.seconds;
    s.seconds += t.seconds;
    this.speed.set(t.resolution, s);
    const eta = t.imagesPerSecond > 0 ? Math.max(0, this.settings.totalImages - t.imagesShown) / t.imagesPerSecond : NaN;
    const line = {
      time: new Date().toISOString(),
      kimg: t.imagesShown / 1000,
      resolution: t.resolution,
      phase: t.phase,
      alpha: t.alpha,
      lod: t.lod,
      minibatch: t.minibatch,
      learningRate: t.learningRate,
      dLoss: t.dLoss,
      gLoss: t.gLoss,
      gradientPenalty: t.gradientPenalty,
      drift: t.drift,
      wasserstein: t.wasserstein,
      labelLoss: t.labelLoss,
      imagesPerSecond: t.imagesPerSecond,
      seconds: t.seconds,
      skippedD: t.skippedD,
      skippedG: t.skippedG,
    };
    fs.appendFileSync(path.join(this.dir, 'log.jsonl'), JSON.stringify(line) + '\n');
    const step = t.imagesShown;
    this.tb.scalar('Loss/D', t.dLoss, step);
    this.tb.scalar('Loss/G', t.gLoss, step);
    this.tb.scalar('Loss/gradient_penalty', t.gradientPenalty, step);
    this.tb.scalar('Loss/wasserstein', t.wasserstein, step);
    this.tb.scalar('Progress/lod', t.lod, step);
    this.tb.scalar('Progress/resolution', t.resolution, step);
    this.tb.scalar('Speed/images_per_second', t.imagesPerSecond, step);
    hooks.onTick?.(t, eta);
  }

  /** EMA samples left, raw-generator samples right, every cell upscaled to the final size. */
  private async writeSamples(file?: string): Promise<string> {
    const n = this.settings.sampleCount;
    const columns = Math.ceil(Math.sqrt(n));
    const ema = this.trainer.sample(this.latents, { ema: true });
    const raw = this.trainer.sample(this.latents, { ema: false });
    const [_, c, h, w] = ema.shape;
    const rows = Math.ceil(n / columns);
    const cell = c * h * w;
    const data = new Float32Array(rows * columns * 2 * cell).fill(-1);
    for (let i = 0; i < n; i++) {
      const row = Math.floor(i / columns);
      const col = i % columns;
      data.set(ema.data.subarray(i * cell, (i + 1) * cell) as Float32Array, (row * columns * 2 + col) * cell);
      data.set(raw.data.subarray(i * cell, (i + 1) * cell) as Float32Array, (row * columns * 2 + columns + col) * cell);
    }
    const grid = new Tensor(data, [rows * columns * 2, c, h, w], 'float32');
    const png = await imageGrid(grid, { columns: columns * 2, size: this.trainer.options.network.resolution });
    const target = file ?? path.join(this.dir, 'samples', `fakes-${String(this.trainer.state.imagesShown).padStart(9, '0')}.png`);
    fs.writeFileSync(target, png);
    this.tb.image('Samples/ema_left_raw_right', png, this.trainer.state.imagesShown);
    return target;
  }

  private checkpoint(name?: string): string {
    const dir = path.join(this.dir, 'checkpoints');
    const file = path.join(dir, `${name ?? `snapshot-${String(this.trainer.state.imagesShown).padStart(9, '0')}`}.safetensors`);
    this.trainer.save(file);
    const snapshots = fs.readdirSync(dir).filter((f) => f.startsWith('snapshot-')).sort();
    for (const old of snapshots.slice(0, Math.max(0, snapshots.length - this.settings.keepCheckpoints))) {
      fs.rmSync(path.join(dir, old), { force: true });
    }
    return file;
  }

  private async writeTimelapse(): Promise<string | null> {
    const dir = path.join(this.dir, 'samples');
    const frames = fs.readdirSync(dir).filter((f) => /^fakes-\d+\.png$/.test(f)).sort();
    if (frames.length < 2) return null;
    const file = path.join(this.dir, 'timelapse.webp');
    await writeTimelapse(frames.map((f) => fs.readFileSync(path.join(dir, f))), file);
    return file;
  }
}

/** The newest checkpoint of a run folder by images shown (final, snapshots, resolution ends). */
export function newestCheckpoint(dir: string): string | null {
  const ckDir = path.join(dir, 'checkpoints');
  if (!fs.existsSync(ckDir)) return null;
  const files = fs.readdirSync(ckDir).filter((f) => f.endsWith('.safetensors') && !f.startsWith('.'));
  if (files.length === 0) return null;
  const newest = files
    .map((f) => ({ f, t: fs.statSync(path.join(ckDir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t)[0];
  return path.join(ckDir, newest.f);
}
