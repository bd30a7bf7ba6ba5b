// The published-package flow, for real: scripts/check-pack builds the prebuild when it is missing or
// stale, packs the package, installs the tarball (npm cache first) into an empty folder, runs `progan setup`
// there, then require('progan'), import('progan') from an .mjs file and `progan info --json` — with no
// compile step on the installing side. ~40 s with an up-to-date prebuild, a few minutes when it builds.
import test from 'ava';
import { spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '..');

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

test('npm pack → install → progan setup → require, ESM import and CLI work without compiling', async (t) => {
  t.timeout(9 * 60_000);
  const { code, output } = await run('bash', [path.join(root, 'scripts', 'check-pack')]);
  for (const line of output.split('\n')) if (line.startsWith('check-pack:')) t.log(line);
  t.is(code, 0, output.slice(-6000));
  t.regex(output, /check-pack: PASS/);
  t.regex(output, /\(RUNPATH\)\s+Library runpath: \[\$ORIGIN\/\.\.\/\.\.\/\.libtorch\/torch\/lib\]/);
});
