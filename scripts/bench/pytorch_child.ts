// One long-lived python3 serving scripts/bench/pytorch_step.py jobs, a JSON line each way, so that
// `import torch` is paid once (used by the CPU bench and the GPU bench).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const repoRoot = path.resolve(__dirname, '..', '..');

/** `env` with the repo's own libtorch wheel (.libtorch) as the Python torch, as the CPU bench uses it. */
export function withRepoTorch(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PYTHONPATH: path.join(repoRoot, '.libtorch') };
}

export class PyTorchChild {
  private proc: ChildProcessWithoutNullStreams;
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  stderr = '';

  /** `env` as given: withRepoTorch() for the CPU wheel, or the environment as is for python3's own torch. */
  constructor(env: NodeJS.ProcessEnv) {
    this.proc = spawn('python3', [path.join(__dirname, 'pytorch_step.py'), '--lines'], { env });
    this.proc.stderr.on('data', (d) => (this.stderr = (this.stderr + String(d)).slice(-4000)));
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, error: `python exited ${code}: ${this.stderr}` }));
    });
  }

  async call<T = Record<string, unknown>>(job: object): Promise<T> {
    this.proc.stdin.write(JSON.stringify(job) + '\n');
    const line = this.lines.shift() ?? (await new Promise<string>((r) => this.waiting.push(r)));
    const out = JSON.parse(line) as { ok: boolean; error?: string };
    if (!out.ok) throw new Error(`pytorch_step.py: ${out.error}`);
    return out as T;
  }

  close() {
    this.proc.stdin.end();
  }
}
