// One fresh process, one trainer (default build), a few steps: its peak RSS (bench.ts runs it per preset so
// the number is not inflated by the other variants' trainers that the main bench process keeps alive).
// Usage: tsx scripts/bench/rss_child.ts <data.pgds> <preset> <resolution> <threads>
import { Trainer } from '../../lib/train/trainer';
import type { PresetName } from '../../lib/options';
import { peakRssMB } from './memory';

async function main() {
  const [data, preset, res, threads] = process.argv.slice(2);
  const before = peakRssMB();
  const t = await Trainer.create({
    data,
    network: { preset: preset as PresetName, resolution: 64 },
    schedule: { minibatch: 16, learningRate: 0.001 },
    ema: { beta: 0.999, halfLifeKimg: 0 },
    threads: Number(threads),
  });
  await t.trainPhase({ resolution: Number(res), phase: Number(res) > 4 ? 'fade' : 'stable', images: 32, tickImages: 32 });
  console.log(JSON.stringify({ peakRssMB: peakRssMB(), baselineRssMB: before }));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
