// The `progan` command line. Each command validates its flags, then calls the same API a
// TypeScript script would.
import { Command, InvalidArgumentError } from 'commander';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describeArchitecture } from './architecture';
import { registerPrepareCommand } from './dataset/command';
import { registerTrainingCommands } from './train/command';
import { packageRoot } from './native';
import { PRESETS, type PresetName } from './options';

export function integerFlag(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`Expected an integer for ${name} but received ${value}`);
    return n;
  };
}

export function numberFlag(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`Expected a finite number for ${name} but received ${value}`);
    return n;
  };
}

export function presetFlag(value: string): PresetName {
  if (!(value in PRESETS)) throw new InvalidArgumentError(`Expected one of ${Object.keys(PRESETS).join(', ')} but received ${value}`);
  return value as PresetName;
}

function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print the architecture: parameter counts and feature maps per resolution')
    .option('--preset <name>', 'paper | cifar | small', presetFlag, 'paper')
    .option('--resolution <n>', 'final resolution (power of two, 4..1024)', integerFlag('--resolution'))
    .option('--latent-size <n>', 'latent vector length', integerFlag('--latent-size'))
    .option('--fmap-base <n>', 'feature-map base', integerFlag('--fmap-base'))
    .option('--fmap-max <n>', 'most feature maps per layer', integerFlag('--fmap-max'))
    .option('--channels <n>', 'image channels (1 or 3)', integerFlag('--channels'))
    .option('--label-size <n>', 'classes for a conditional model (0: none)', integerFlag('--label-size'))
    .option('--json', 'machine-readable output')
    .action((o) => {
      const summary = describeArchitecture({
        preset: o.preset,
        resolution: o.resolution,
        latentSize: o.latentSize,
        fmapBase: o.fmapBase,
        fmapMax: o.fmapMax,
        channels: o.channels,
        labelSize: o.labelSize,
      });
      if (o.json) {
        console.log(JSON.stringify(summary, null, 2));
        return;
      }
      const c = summary.config;
      console.log(`progan ${c.preset} preset, ${c.resolution}×${c.resolution}, ${c.channels} channel(s), latent ${c.latentSize}`);
      console.log(`generator     ${summary.generator.parameters.toLocaleString('en')} parameters`);
      console.log(`discriminator ${summary.discriminator.parameters.toLocaleString('en')} parameters`);
      console.log('resolution  fmaps   G params     D params');
      for (const r of summary.resolutions) {
        console.log(
          `${`${r.resolution}²`.padEnd(10)}  ${String(r.channels).padStart(5)}  ${r.generatorParameters.toLocaleString('en').padStart(10)}  ${r.discriminatorParameters.toLocaleString('en').padStart(11)}`,
        );
      }
    });
}

function registerSetup(program: Command): void {
  program
    .command('setup')
    .description('put libtorch in place (LIBTORCH=<dir>, an installed Python torch, or the pinned wheel; offline)')
    .option('--cuda', 'install the pinned CUDA wheel set into .libtorch-cuda/')
    .option('--force', 'redo the choice')
    .action((o) => {
      const args = [path.join(packageRoot, 'scripts', 'setup-libtorch.js')];
      if (o.cuda) args.push('--cuda');
      if (o.force) args.push('--force');
      const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });
}

export function buildProgram(): Command {
  const program = new Command('progan')
    .description('Progressive Growing of GANs (Karras et al., ICLR 2018) on libtorch')
    .showHelpAfterError();
  registerSetup(program);
  registerInfo(program);
  registerPrepareCommand(program);
  registerTrainingCommands(program);
  return program;
}

export function main(argv: string[]): void {
  buildProgram()
    .parseAsync(argv)
    .catch((e: Error) => {
      console.error(`progan: ${e.message}`);
      process.exitCode = 1;
    });
}
