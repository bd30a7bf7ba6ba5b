#!/usr/bin/env node
'use strict';
// In a source checkout (lib/ beside bin/, tsx installed) the TypeScript runs directly, so the CLI
// never lags behind the sources; an installed package (no lib/) runs the compiled dist/.
const fs = require('node:fs');
const path = require('node:path');
const source = path.join(__dirname, '..', 'lib', 'cli.ts');
let tsx = null;
try {
  tsx = require.resolve('tsx/cjs');
} catch {}
if (fs.existsSync(source) && tsx) {
  require(tsx);
  require(source).main(process.argv);
} else {
  require(path.join(__dirname, '..', 'dist', 'cli.js')).main(process.argv);
}
