// Runs a Python reference script (test/reference/*.py) once for a whole test file: the test writes
// every case into one job (a JSON spec plus safetensors files in a temp dir), the script answers with
// one safetensors file per case. Python torch comes from the repository's .libtorch folder.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readSafetensors, type NamedTensors } from '../../lib/safetensors';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const torchPath = path.join(repoRoot, '.libtorch');

/** Throws (failing the test, never skipping it) when Python torch is not where the tests expect it. */
export function assertPythonTorch(): void {
  const marker = path.join(torchPath, 'torch', '__init__.py');
  if (!fs.existsSync(marker)) {
    throw new Error(
      `The PyTorch reference needs Python torch at ${marker}, which does not exist. ` +
        'Run `npm run setup` (from the pinned wheel or LIBTORCH=<python torch>) first.',
    );
  }
}

export function makeJobDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `progan-${prefix}-`));
}

export interface ReferenceRun {
  results: Map<string, NamedTensors>;
  seconds: number;
  stdout: string;
}

/** Runs `script` on {cases, outDir} once; returns each case's tensors by case id. */
export function runReference(script: string, dir: string, cases: ({ id: string } & Record<string, unknown>)[]): ReferenceRun {
  assertPythonTorch();
  const outDir = path.join(dir, 'out');
  fs.mkdirSync(outDir, { recursive: true });
  const jobFile = path.join(dir, 'job.json');
  fs.writeFileSync(jobFile, JSON.stringify({ cases, outDir }));
  const started = Date.now();
  const r = spawnSync('python3', [path.join(repoRoot, 'test', 'reference', script), jobFile], {
    env: { ...process.env, PYTHONPATH: torchPath, OMP_WAIT_POLICY: 'PASSIVE' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = (Date.now() - started) / 1000;
  if (r.error) throw new Error(`Could not start python3 for ${script}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${script} exited with ${r.status ?? r.signal}:\n${r.stderr.slice(-4000)}`);
  }
  const results = new Map<string, NamedTensors>();
  for (const c of cases) {
    const file = path.join(outDir, `${c.id}.safetensors`);
    if (!fs.existsSync(file)) throw new Error(`${script} wrote no result for case ${c.id}`);
    results.set(c.id, readSafetensors(file).tensors);
  }
  return { results, seconds, stdout: r.stdout };
}

export function removeJobDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
