// Peak resident memory of this process, for the bench.

/** VmHWM (this address space's peak); falls back to maxRSS, which on Linux also counts a forking parent's. */
export function peakRssMB(): number {
  try {
    const m = /VmHWM:\s*(\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {}
  return process.resourceUsage().maxRSS / 1024;
}
