// One status line per tick for the CLI: a live bar on a terminal, plain lines otherwise.
import type { Progress } from './trainer';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function formatTick(p: Progress, totalImages: number, etaSeconds: number): string {
  const kimg = (p.imagesShown / 1000).toFixed(1);
  const total = (totalImages / 1000).toFixed(1);
  const phase = p.phase === 'fade' ? `fade α ${p.alpha.toFixed(2)}` : 'stable    ';
  const skipped = p.skippedD + p.skippedG > 0 ? ` skipped ${p.skippedD}/${p.skippedG}` : '';
  return (
    `${`${p.resolution}²`.padStart(5)} ${phase} | ${kimg}/${total} kimg | ${p.imagesPerSecond.toFixed(1)} img/s | ` +
    `D ${p.dLoss.toFixed(3)} G ${p.gLoss.toFixed(3)} GP ${p.gradientPenalty.toFixed(3)}${skipped} | ETA ${formatDuration(etaSeconds)}`
  );
}

export class ProgressLine {
  private readonly tty = Boolean(process.stderr.isTTY);

  update(line: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  /** Prints a message without leaving a half-drawn bar behind. */
  message(text: string): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${text}\n`);
  }

  end(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
