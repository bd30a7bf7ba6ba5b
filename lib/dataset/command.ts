/** The `progan prepare` CLI command. */
import type { Command } from 'commander';
import { FITS, type Fit, type PrepareOptions } from './options';
import { prepareDataset, type PrepareReport, type ProgressCallback } from './prepare';

interface CommandOptions {
  resolution: string;
  labels?: string;
  fit?: string;
  channels?: string;
  background?: string;
  strict?: boolean;
  minSize?: string;
}

export function registerPrepareCommand(program: Command): Command {
  return program
    .command('prepare')
    .description(
      'build a .pgds dataset file from a folder of images, an MNIST/Fashion-MNIST *-images-idx3-ubyte[.gz] file, ' +
        'or an installed emoji-datasource-<set> package',
    )
    .argument('<input>', 'folder, IDX image file, or emoji-datasource-<set>')
    .argument('<out>', 'the .pgds file to write')
    .requiredOption('-r, --resolution <R>', 'final resolution, a power of two from 4 to 1024')
    .option('--labels <x>', 'labels CSV (folder), emoji.json field category|subcategory (emoji), or idx1 labels file (IDX)')
    .option('--fit <mode>', `square the image: ${FITS.join('|')}`, 'crop')
    .option('--channels <n>', '1 (grayscale) or 3 (RGB); default 3, or 1 for IDX')
    .option('--background <#rrggbb>', 'colour behind transparency and pad borders', '#ffffff')
    .option('--strict', 'fail on the first unreadable or too small image instead of skipping it')
    .option('--min-size <px>', 'skip images whose shorter side is smaller', '8')
    .action(async (input: string, out: string, opts: CommandOptions) => {
      const options: PrepareOptions = {
        input,
        output: out,
        resolution: toNumber(opts.resolution),
        fit: opts.fit as Fit,
        channels: opts.channels === undefined ? undefined : (toNumber(opts.channels) as 1 | 3),
        background: opts.background,
        labels: opts.labels,
        strict: opts.strict === true,
        minSize: toNumber(opts.minSize ?? '8'),
      };
      const progress = createProgress(process.stderr);
      let report: PrepareReport;
      try {
        report = await prepareDataset(options, progress.update);
      } finally {
        progress.end();
      }
      process.stdout.write(formatReport(report));
    });
}

/** Validation happens in prepareDataset, which names the option; keep the user's text for the message. */
function toNumber(text: string): number {
  const n = Number(text);
  return text.trim() === '' || Number.isNaN(n) ? (text as unknown as number) : n;
}

export function formatReport(r: PrepareReport): string {
  const lines = [
    `wrote ${r.output}`,
    `  ${r.count} images, ${r.resolution}×${r.resolution}, ${r.channels} channel${r.channels === 1 ? '' : 's'}` +
      `, ${r.labelSize ? `${r.labelSize} classes` : 'unlabelled'}, ${r.seconds.toFixed(1)} s`,
  ];
  if (r.ignored) lines.push(`  ${r.ignored} non-image file(s) ignored`);
  if (r.skipped.length) {
    lines.push(`  ${r.skipped.length} file(s) skipped:`);
    for (const s of r.skipped) lines.push(`    ${s.file}: ${s.reason}`);
  }
  return lines.join('\n') + '\n';
}

/** A redrawn bar on a terminal; elsewhere (logs, CI) a plain line every 10 %. */
function createProgress(stream: NodeJS.WriteStream): { update: ProgressCallback; end: () => void } {
  const tty = stream.isTTY === true;
  let lastDecile = -1;
  let lastDraw = 0;
  let drawn = false;
  const update: ProgressCallback = (done, total) => {
    if (tty) {
      const now = Date.now();
      if (done < total && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const filled = Math.round((width * done) / total);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${Math.floor((100 * done) / total)}%`);
      drawn = true;
    } else {
      const decile = Math.floor((10 * done) / total);
      if (decile > lastDecile) {
        lastDecile = decile;
        stream.write(`prepare: ${done}/${total} (${decile * 10}%)\n`);
      }
    }
  };
  return { update, end: () => drawn && stream.write('\n') };
}
